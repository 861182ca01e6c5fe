"""Detection as a task of the run layer (:func:`banet.runs.fit`).

A run folder like ``banet train``'s: ``RUN/config.yaml`` (the options), ``RUN/last/`` and ``RUN/best/``
(``model.safetensors`` + ``config.json`` describing the detector; ``last/`` also ``train_state.pt``),
``RUN/metrics.csv`` and ``RUN/summary.png``. What is detection's own: the torchvision detector over a timm
backbone, the COCO-layout training set, the loss (the sum of the detector's loss dict), COCO box (and mask) AP;
the best checkpoint is the one with the highest box AP. Under torchrun every process scores its share of the
validation images and the predictions are gathered for one ``COCOeval`` (:func:`evaluate_detector`).
"""
import math
from typing import Any, Dict

import torch
from torch import nn

from ..dense.loader import build_loader, collate_lists, eval_shard
from ..errors import BanetError
from ..runs import Data, DistInfo, Precision, default_name, fit
from ..runs.initial import backbone_weights, class_count, report_backbone
from ..runs.loader import shuffled_loader
from ..runs.progress import bar
from .builders import create_detector
from .checkpoint import detector_config
from .data import CocoDetectionDataset, train_transforms
from .evaluate import evaluate_detector
from .options import DetectTrainConfig

__all__ = ['DetectTask', 'train_detector']

_AP = ('bbox_AP', 'bbox_AP50', 'bbox_AP75')


def _to(target: Dict[str, Any], device: torch.device) -> Dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in target.items()}


class DetectTask:
    """Object detection on COCO-layout data: what :func:`banet.runs.fit` needs of it."""
    name = 'detect'
    identity = ('arch', 'backbone')
    best_metric, best_label = 'bbox_AP', 'box AP'
    train_columns = ('train_loss', 'train_img_s', 'lr')
    eval_columns = _AP
    print_columns = ('epoch', 'train_loss', 'train_img_s', 'lr', 'bbox_AP', 'bbox_AP50', 'segm_AP')
    panels = (('loss', ('train_loss',)), ('COCO AP', ('bbox_AP', 'bbox_AP50', 'segm_AP')))

    def run_name(self, cfg: DetectTrainConfig) -> str:
        return default_name(cfg.arch, cfg.backbone)

    def prepare(self, cfg: DetectTrainConfig, info: DistInfo) -> None:
        self.cfg, self.masks = cfg, cfg.arch == 'maskrcnn'
        scale = tuple(cfg.scale_jitter) if cfg.scale_jitter else None
        self.train_set = CocoDetectionDataset(cfg.data_dir, cfg.train_split, train_transforms(cfg.hflip, scale),
                                              masks=self.masks, skip_empty=True)
        coco = self.train_set.coco
        self.categories = {c['id']: c['name'] for c in coco.loadCats(coco.getCatIds())}
        self.num_classes = class_count(self.categories, cfg.num_classes)
        if len(self.train_set) < cfg.batch_size * info.world_size:
            raise BanetError(f'{len(self.train_set)} training images with objects are fewer than one batch of '
                             f'{cfg.batch_size} x {info.world_size} process(es): lower --batch-size')

    def build(self, cfg: DetectTrainConfig, info: DistInfo, precision: Precision) -> nn.Module:
        self.device = info.device
        model = create_detector(cfg.arch, cfg.backbone, self.num_classes,
                                backbone_weights=backbone_weights(cfg.backbone_checkpoint, cfg.trust_pickle),
                                trainable_layers=cfg.trainable_layers, norm=cfg.norm, min_size=cfg.min_size,
                                max_size=cfg.max_size, fpn_channels=cfg.fpn_channels,
                                backbone_kwargs=cfg.model_kwargs)
        report_backbone(cfg.backbone_checkpoint, model.backbone.weights_report, info)
        return model

    def loaders(self, cfg: DetectTrainConfig, info: DistInfo, model: nn.Module) -> Data:
        loader = shuffled_loader(self.train_set, cfg.batch_size, cfg.workers, cfg.seed, info, collate_lists)
        val_set = CocoDetectionDataset(cfg.data_dir, cfg.val_split, masks=self.masks, drop_crowd=False)
        self.val_coco = val_set.coco
        # this process's share of the validation images, in order (every image on exactly one process)
        val_loader = build_loader(eval_shard(val_set, info), cfg.batch_size, train=False, num_workers=cfg.workers)
        return Data(loader, val_loader, {'loader': loader.generator})

    def loss(self, model: nn.Module, batch: Any):
        images, targets = batch
        images = [image.to(self.device) for image in images]
        return model(images, [_to(t, self.device) for t in targets]), len(images)

    def evaluate(self, model: nn.Module, loader: Any, info: DistInfo, precision: Precision,
                 progress: bool) -> Dict[str, float]:
        metrics = evaluate_detector(model, bar(loader, 'eval', progress), self.val_coco, device=info.device,
                                    autocast_dtype=precision.dtype, dist=info)
        return {**{k: metrics.get(k, math.nan) for k in _AP}, **metrics}

    def checkpoint_config(self, model: nn.Module, **extra: Any) -> Dict[str, Any]:
        extra['metrics'] = {k: v for k, v in extra.get('metrics', {}).items() if 'AP' in k}
        return detector_config(self.cfg, self.num_classes, self.categories, **extra)

    def describe(self, cfg: DetectTrainConfig, model: nn.Module, info: DistInfo) -> str:
        n_params = sum(p.numel() for p in model.parameters())
        return f'{cfg.arch} over {cfg.backbone}: {n_params:,} parameters, {self.num_classes} classes'


def train_detector(config: DetectTrainConfig) -> Dict[str, Any]:
    """Train ``config.arch`` over ``config.backbone`` on a COCO-layout folder; returns the last row, ``best``
    (box AP), the run folder and the model. Example::

        from banet.detection import DetectTrainConfig, train_detector
        train_detector(DetectTrainConfig(arch='fasterrcnn', backbone='ba_resnet18', data_dir='scenes', epochs=1,
                                         batch_size=4, output='runs', experiment='e'))   # run folder runs/e/
    """
    return fit(DetectTask(), config)
