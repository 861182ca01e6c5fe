"""Training, validation and loading of segmenters: a run folder like ``banet detect train``'s, with exact resume.

``RUN/config.yaml`` (the options), ``RUN/last/`` and ``RUN/best/`` (``model.safetensors`` + ``config.json``
describing the segmenter, its input and the category names; ``last/`` also ``train_state.pt``),
``RUN/metrics.csv`` and ``RUN/summary.png``. The best checkpoint is the one with the highest mean IoU.

Training batches are random crops of ``crop_size`` (padded with the ignore label 255), so they stack; evaluation
resizes each image's shorter side to ``base_size`` and runs one image at a time (torchvision's reference), so
every image is measured whole and alone. Evaluation runs on the first process of a distributed run. The step is
``banet train``'s (:func:`banet.train.engine.train_one_epoch`: autocast, loss scaler, clipping, progress bar).
"""
import math
import time
from typing import Any, Dict, Mapping

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import NativeScaler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..dense.loader import build_loader
from ..detection.runs import (backbone_weights, class_count, finish_run, gather_rng, report_backbone, restore_run,
                              run_distributed, start_run, train_loader)
from ..errors import BanetError
from ..train.distributed import DistInfo
from ..train.engine import StepConfig, train_one_epoch
from ..train.metrics import MetricsLog
from ..train.precision import Precision, resolve_precision
from ..train.state import copy_checkpoint, save_checkpoint
from .builders import create_segmenter
from .checkpoint import normalisation, segmenter_config
from .data import CocoSegmentationDataset, eval_transforms, train_transforms
from .evaluate import evaluate_segmenter
from .loss import SegmentationLoss
from .options import SegmentTrainConfig

__all__ = ['train_segmenter']

_METRICS = ('miou', 'pixel_acc')


def _eval_loader(data_dir: str, split: str, input_config: Mapping[str, Any], workers: int) -> DataLoader:
    dataset = CocoSegmentationDataset(data_dir, split, eval_transforms(input_config['base_size']),
                                      mean=input_config['mean'], std=input_config['std'])
    return build_loader(dataset, 1, train=False, num_workers=workers, collate_fn=None)


def _evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, precision: Precision,
              progress: bool) -> Dict[str, Any]:
    with precision.autocast(device)():
        return evaluate_segmenter(model, tqdm(loader, desc='eval', disable=not progress, leave=False, unit='img'),
                                  num_classes, device=device)


def train_segmenter(config: SegmentTrainConfig) -> Dict[str, Any]:
    """Train ``config.arch`` over ``config.backbone`` on a COCO-layout folder; returns the last row, run folder
    and model. Example::

        from banet.segmentation import SegmentTrainConfig, train_segmenter
        train_segmenter(SegmentTrainConfig(arch='fcn', backbone='ba_resnet18', data_dir='coco', epochs=1,
                                           output='runs', experiment='s'))   # run folder runs/s/
    """
    return run_distributed(config, _train)


def _train(cfg: SegmentTrainConfig, info: DistInfo) -> Dict[str, Any]:
    started = time.perf_counter()
    mean, std = normalisation(cfg.backbone)
    train_set = CocoSegmentationDataset(cfg.data_dir, cfg.train_split,
                                        train_transforms(cfg.base_size, cfg.crop_size, cfg.hflip), mean=mean, std=std)
    categories = {c['id']: c['name'] for c in train_set.coco.loadCats(train_set.coco.getCatIds())}
    num_classes = class_count(categories, cfg.num_classes)
    if len(train_set) < cfg.batch_size * info.world_size:
        raise BanetError(f'{len(train_set)} training images are fewer than one batch of {cfg.batch_size} x '
                         f'{info.world_size} process(es): lower --batch-size')
    eval_loader = _eval_loader(cfg.data_dir, cfg.val_split, {'base_size': cfg.base_size, 'mean': mean, 'std': std},
                               cfg.workers) if info.primary else None  # a missing split fails before the run starts
    precision = resolve_precision(cfg.amp, cfg.amp_dtype, False, info.device)
    run_dir = start_run(cfg, info, precision, cfg.arch)

    torch.manual_seed(cfg.seed + info.rank)
    model = create_segmenter(cfg.arch, cfg.backbone, num_classes, output_stride=cfg.output_stride, aux=cfg.aux,
                             backbone_weights=backbone_weights(cfg), norm=cfg.norm,
                             trainable_layers=cfg.trainable_layers).to(info.device)
    report_backbone(cfg, model.backbone.features.weights_report, info)
    loader, sampler, generator = train_loader(train_set, cfg, info)
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    momentum=cfg.momentum)
    scheduler, num_epochs = create_scheduler_v2(
        optimizer, sched=cfg.sched, num_epochs=cfg.epochs, decay_rate=cfg.poly_power, min_lr=0.0,
        warmup_epochs=cfg.warmup_epochs, warmup_lr=cfg.warmup_lr, step_on_epochs=False,
        updates_per_epoch=len(loader))
    scaler = NativeScaler(device=info.device.type) if precision.needs_scaler else None
    start_epoch, best, num_updates = 0, None, 0
    if cfg.resume:
        state = restore_run(run_dir, info, model, optimizer, scheduler, generator)
        if scaler is not None and state.get('scaler'):
            scaler.load_state_dict(state['scaler'])
        start_epoch, best, num_updates = state['epoch'], state['best'], state['num_updates']
    net = DistributedDataParallel(model) if info.distributed else model
    step = StepConfig(device=info.device, autocast=precision.autocast(info.device), loss_scaler=scaler,
                      clip_grad=cfg.clip_grad, progress=info.primary and cfg.progress)
    criterion = SegmentationLoss()
    log = MetricsLog(run_dir) if info.primary else None
    if log:
        log.truncate(start_epoch)
    row: Dict[str, Any] = {}
    for epoch in range(start_epoch, num_epochs):
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        stats = train_one_epoch(epoch + 1, net, loader, criterion, optimizer, scheduler, step,
                                num_updates=num_updates)
        num_updates = stats['num_updates']
        row = {'epoch': epoch + 1, **{k: stats[k] for k in ('train_loss', 'train_img_s', 'lr')}}
        validated = (epoch + 1) % cfg.val_interval == 0 or epoch + 1 == num_epochs
        metrics = _evaluate(model, eval_loader, num_classes, info.device, precision, step.progress) \
            if validated and info.primary else {}
        row.update({k: metrics.get(k, math.nan) for k in _METRICS})
        improved = validated and info.primary and (best is None or row['miou'] > best)
        best = row['miou'] if improved else best
        rng = gather_rng(generator, info)
        if info.primary:
            config = segmenter_config(cfg, num_classes, categories, epoch=epoch + 1, precision=precision.as_dict(),
                                      metrics={k: row[k] for k in _METRICS if not math.isnan(row[k])})
            save_checkpoint(run_dir / 'last', model, config, None, {
                'epoch': epoch + 1, 'num_updates': num_updates, 'best': best, 'optimizer': optimizer.state_dict(),
                'scheduler': scheduler.state_dict(), 'scaler': scaler.state_dict() if scaler else None, 'rng': rng})
            if improved:
                copy_checkpoint(run_dir / 'last', run_dir / 'best')
            log.append(row)
            print(' '.join(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}' for k, v in row.items()),
                  flush=True)
    if info.primary:
        finish_run(log, run_dir, (('loss', ('train_loss',)), ('validation', _METRICS)), num_epochs - start_epoch,
                   started, best, 'mIoU')
    return {'run_dir': str(run_dir), 'best_miou': best, 'model': model, **row}
