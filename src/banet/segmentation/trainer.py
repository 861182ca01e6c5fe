"""Training, validation and loading of segmenters: a run folder like ``banet detect train``'s, with exact resume.

``RUN/config.yaml`` (the options), ``RUN/last/`` and ``RUN/best/`` (``model.safetensors`` + ``config.json``
describing the segmenter, its input and the category names; ``last/`` also ``train_state.pt``),
``RUN/metrics.csv`` and ``RUN/summary.png``. The best checkpoint is the one with the highest mean IoU.

Training batches are random crops of ``crop_size`` (padded with the ignore label 255), so they stack; evaluation
resizes each image's shorter side to ``base_size`` and runs one image at a time (torchvision's reference), so
every image is measured whole and alone. Evaluation runs on the first process of a distributed run. The step is
``banet train``'s (:func:`banet.train.engine.train_one_epoch`: autocast, loss scaler, clipping, progress bar).
"""
import json
import math
import time
from pathlib import Path
from typing import Any, Dict, Mapping

import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import NativeScaler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..detection.data import build_loader
from ..detection.runs import (backbone_weights, class_count, finish_run, gather_rng, report_backbone, restore_run,
                              run_distributed, start_run, train_loader)
from ..errors import BanetError
from ..io import find_checkpoint, load_state_dict_file, save_json_file
from ..train.distributed import DistInfo
from ..train.engine import StepConfig, train_one_epoch
from ..train.metrics import MetricsLog
from ..train.precision import Precision, resolve_precision
from ..train.state import copy_checkpoint, save_checkpoint
from .builders import create_segmenter
from .data import CocoSegmentationDataset, eval_transforms, train_transforms
from .evaluate import evaluate_segmenter
from .loss import SegmentationLoss
from .metrics import named_iou
from .options import SegmentTrainConfig, SegmentValidateConfig

__all__ = ['train_segmenter', 'validate_segmenter', 'load_segmenter', 'segmenter_config']

_BUILD_KEYS = ('arch', 'backbone', 'output_stride', 'aux', 'norm', 'trainable_layers')
_METRICS = ('miou', 'pixel_acc')


def segmenter_config(cfg: SegmentTrainConfig, num_classes: int, categories: Mapping[int, str],
                     **extra: Any) -> Dict[str, Any]:
    """The ``config.json`` of a segmentation checkpoint: what rebuilds the segmenter, how its input is prepared
    (evaluation size, normalisation) and the category names."""
    mean, std = _normalisation(cfg.backbone)
    return {'task': 'segmentation', 'segmenter': {k: getattr(cfg, k) for k in _BUILD_KEYS} | {
                'num_classes': num_classes},
            'input': {'base_size': cfg.base_size, 'mean': mean, 'std': std},
            'categories': {str(k): v for k, v in categories.items()}, **extra}


def load_segmenter(source: Any) -> nn.Module:
    """The segmenter of a ``banet segment train`` run or checkpoint folder, in eval mode (same resolution rules as
    :func:`banet.io.find_checkpoint`); ``model.num_classes``, ``model.categories`` (category id to name) and
    ``model.input_config`` (``base_size``, ``mean``, ``std``) describe it."""
    weights, config_file = find_checkpoint(source)
    config = json.loads(config_file.read_text()) if config_file else None
    if not config or config.get('task') != 'segmentation':
        raise BanetError(f'{source} is not a segmentation checkpoint (its config.json has no "task": '
                         '"segmentation"); give a banet segment train run folder')
    model = create_segmenter(**config['segmenter'])
    model.load_state_dict(load_state_dict_file(weights))
    model.num_classes = config['segmenter']['num_classes']
    model.categories = {int(k): v for k, v in config['categories'].items()}
    model.input_config = config['input']
    return model.eval()


def _normalisation(backbone: str) -> tuple[list[float], list[float]]:
    """The mean and std of the backbone's pretrained config (ImageNet's for models without one)."""
    pretrained = timm.get_pretrained_cfg(backbone)
    mean = pretrained.mean if pretrained else IMAGENET_DEFAULT_MEAN
    std = pretrained.std if pretrained else IMAGENET_DEFAULT_STD
    return list(mean), list(std)


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
    mean, std = _normalisation(cfg.backbone)
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


def validate_segmenter(config: SegmentValidateConfig) -> Dict[str, Any]:
    """Mean IoU, pixel accuracy and per-class IoU of a segmentation checkpoint on ``config.val_split``, written as
    JSON (classes absent from the split and never predicted have IoU ``null``, left out of the mean)."""
    cfg = config
    cfg.check()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    weights, _ = find_checkpoint(cfg.checkpoint)
    model = load_segmenter(cfg.checkpoint)
    device = torch.device(cfg.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    precision = resolve_precision(cfg.amp, cfg.amp_dtype, False, device)
    loader = _eval_loader(cfg.data_dir, cfg.val_split, model.input_config, cfg.workers)
    metrics = _evaluate(model.to(device), loader, model.num_classes, device, precision, cfg.progress)
    result = {'checkpoint': str(weights), 'split': cfg.val_split, 'images': len(loader.dataset),
              'miou': metrics['miou'], 'pixel_acc': metrics['pixel_acc'],
              'iou': named_iou(metrics['iou'], model.categories)}
    out = Path(cfg.results_file) if cfg.results_file else weights.parent / f'validate-{cfg.val_split}.json'
    save_json_file(result, out)
    return {**result, 'results_file': str(out)}
