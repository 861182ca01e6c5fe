"""Training, validation and loading of detectors: a run folder like ``banet train``'s, with exact resume.

``RUN/config.yaml`` (the options), ``RUN/last/`` and ``RUN/best/`` (``model.safetensors`` + ``config.json``
describing the detector; ``last/`` also ``train_state.pt``), ``RUN/metrics.csv`` and ``RUN/summary.png``. The best
checkpoint is the one with the highest box AP. Evaluation runs on the first process of a distributed run.
"""
import math
import time
from typing import Any, Dict

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from ..dense.loader import build_loader, collate_lists
from ..errors import BanetError
from ..train.distributed import DistInfo
from ..train.metrics import MetricsLog
from ..train.precision import resolve_precision
from ..train.state import copy_checkpoint, save_checkpoint
from .builders import create_detector
from .checkpoint import detector_config
from .data import CocoDetectionDataset, train_transforms
from .engine import train_one_epoch
from .evaluate import evaluate_detector
from .options import DetectTrainConfig
from .runs import (backbone_weights, class_count, finish_run, gather_rng, report_backbone, restore_run, run_distributed,
                   start_run, train_loader)

__all__ = ['train_detector']


class _PerUpdate:
    """timm's scheduler stepped per update, in the shape ``train_one_epoch`` calls (``step()``)."""

    def __init__(self, scheduler: Any, num_updates: int) -> None:
        self.scheduler, self.num_updates = scheduler, num_updates

    def step(self) -> None:
        self.num_updates += 1
        self.scheduler.step_update(num_updates=self.num_updates)


def _eval_loader(cfg: Any, masks: bool) -> DataLoader:
    dataset = CocoDetectionDataset(cfg.data_dir, cfg.val_split, masks=masks, drop_crowd=False)
    return build_loader(dataset, cfg.batch_size, train=False, num_workers=cfg.workers)


def train_detector(config: DetectTrainConfig) -> Dict[str, Any]:
    """Train ``config.arch`` over ``config.backbone`` on a COCO-layout folder; returns the last row, run folder
    and model. Example::

        from banet.detection import DetectTrainConfig, train_detector
        train_detector(DetectTrainConfig(arch='fasterrcnn', backbone='ba_resnet18', data_dir='scenes', epochs=1,
                                         batch_size=4, output='runs', experiment='e'))   # run folder runs/e/
    """
    return run_distributed(config, _train)


def _train(cfg: DetectTrainConfig, info: DistInfo) -> Dict[str, Any]:
    started = time.perf_counter()
    masks = cfg.arch == 'maskrcnn'
    scale = tuple(cfg.scale_jitter) if cfg.scale_jitter else None
    train_set = CocoDetectionDataset(cfg.data_dir, cfg.train_split, train_transforms(cfg.hflip, scale),
                                     masks=masks, skip_empty=True)
    categories = {c['id']: c['name'] for c in train_set.coco.loadCats(train_set.coco.getCatIds())}
    num_classes = class_count(categories, cfg.num_classes)
    if len(train_set) < cfg.batch_size * info.world_size:
        raise BanetError(f'{len(train_set)} training images with objects are fewer than one batch of '
                         f'{cfg.batch_size} x {info.world_size} process(es): lower --batch-size')
    precision = resolve_precision(cfg.amp, cfg.amp_dtype, False, info.device)
    run_dir = start_run(cfg, info, precision, cfg.arch)

    torch.manual_seed(cfg.seed + info.rank)
    model = create_detector(cfg.arch, cfg.backbone, num_classes, backbone_weights=backbone_weights(cfg),
                            trainable_layers=cfg.trainable_layers, norm=cfg.norm, min_size=cfg.min_size,
                            max_size=cfg.max_size, fpn_channels=cfg.fpn_channels).to(info.device)
    report_backbone(cfg, model.backbone.weights_report, info)
    loader, sampler, generator = train_loader(train_set, cfg, info, collate_lists)
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    momentum=cfg.momentum)
    scheduler, num_epochs = create_scheduler_v2(
        optimizer, sched=cfg.sched, num_epochs=cfg.epochs, decay_milestones=cfg.decay_milestones,
        decay_rate=cfg.decay_rate, warmup_epochs=cfg.warmup_epochs, warmup_lr=cfg.warmup_lr,
        step_on_epochs=False, updates_per_epoch=len(loader))
    scaler = torch.amp.GradScaler(info.device.type) if precision.needs_scaler else None
    start_epoch, best, num_updates = 0, None, 0
    if cfg.resume:
        state = restore_run(run_dir, info, model, optimizer, scheduler, generator)
        start_epoch, best, num_updates = state['epoch'], state['best'], state['num_updates']
    net = DistributedDataParallel(model) if info.distributed else model
    log = MetricsLog(run_dir) if info.primary else None
    if log:
        log.truncate(start_epoch)
    eval_loader = _eval_loader(cfg, masks) if info.primary else None
    row: Dict[str, Any] = {}
    for epoch in range(start_epoch, num_epochs):
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        tick = time.perf_counter()
        per_update = _PerUpdate(scheduler, num_updates)
        losses = train_one_epoch(net, optimizer, loader, device=info.device, autocast_dtype=precision.dtype,
                                 scaler=scaler, grad_clip=cfg.clip_grad, scheduler=per_update)
        num_updates = per_update.num_updates
        row = {'epoch': epoch + 1, 'train_loss': losses['loss'],
               'train_img_s': len(loader) * cfg.batch_size * info.world_size / (time.perf_counter() - tick),
               'lr': optimizer.param_groups[0]['lr']}
        validated = (epoch + 1) % cfg.val_interval == 0 or epoch + 1 == num_epochs
        if info.primary:
            metrics = evaluate_detector(model, eval_loader, eval_loader.dataset.coco, device=info.device,
                                        autocast_dtype=precision.dtype) if validated else {}
            row.update({k: metrics.get(k, math.nan) for k in ('bbox_AP', 'bbox_AP50', 'bbox_AP75')})
            row.update({k: v for k, v in metrics.items() if k not in row})
        improved = validated and info.primary and (best is None or row['bbox_AP'] > best)
        best = row['bbox_AP'] if improved else best
        rng = gather_rng(generator, info)
        if info.primary:
            config = detector_config(cfg, num_classes, categories, epoch=epoch + 1, precision=precision.as_dict(),
                                     metrics={k: v for k, v in row.items() if 'AP' in k and not math.isnan(v)})
            save_checkpoint(run_dir / 'last', model, config, None, {
                'epoch': epoch + 1, 'num_updates': num_updates, 'best': best,
                'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(), 'rng': rng})
            if improved:
                copy_checkpoint(run_dir / 'last', run_dir / 'best')
            log.append(row)
            print(' '.join(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}' for k, v in row.items()
                           if k in ('epoch', 'train_loss', 'train_img_s', 'lr', 'bbox_AP', 'bbox_AP50',
                                    'segm_AP')), flush=True)
    if info.primary:
        finish_run(log, run_dir, (('loss', ('train_loss',)), ('COCO AP', ('bbox_AP', 'bbox_AP50', 'segm_AP'))),
                   num_epochs - start_epoch, started, best, 'box AP')
    return {'run_dir': str(run_dir), 'best_bbox_AP': best, 'model': model, **row}
