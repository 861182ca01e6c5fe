"""Detection as a task of the run layer (:func:`banet.runs.fit`), and the validation and loading of detectors.

A run folder like ``banet train``'s: ``RUN/config.yaml`` (the options), ``RUN/last/`` and ``RUN/best/``
(``model.safetensors`` + ``config.json`` describing the detector; ``last/`` also ``train_state.pt``),
``RUN/metrics.csv`` and ``RUN/summary.png``. What is detection's own: the torchvision detector over a timm
backbone, the COCO-layout training set, the loss (the sum of the detector's loss dict), COCO box (and mask) AP;
the best checkpoint is the one with the highest box AP. Evaluation runs on the first process and its numbers
reach every process.
"""
import json
import math
from pathlib import Path
from typing import Any, Dict

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import BanetError
from ..io import find_checkpoint, load_state_dict_file, save_json_file
from ..runs import Data, DistInfo, Precision, broadcast_object, default_name, fit, resolve_precision
from ..runs.initial import backbone_weights, class_count, report_backbone
from ..runs.loader import shuffled_loader
from ..runs.progress import bar
from .builders import create_detector
from .data import CocoDetectionDataset, build_loader, collate_detection, train_transforms
from .evaluate import evaluate_detector
from .options import DetectTrainConfig, DetectValidateConfig

__all__ = ['DetectTask', 'train_detector', 'validate_detector', 'load_detector', 'detector_config']

_BUILD_KEYS = ('arch', 'backbone', 'num_classes', 'trainable_layers', 'norm', 'min_size', 'max_size', 'fpn_channels')
_AP = ('bbox_AP', 'bbox_AP50', 'bbox_AP75')


def detector_config(cfg: DetectTrainConfig, num_classes: int, categories: Dict[int, str], **extra: Any):
    """The ``config.json`` of a detection checkpoint: what rebuilds the detector, and the category names."""
    build = {k: getattr(cfg, k) for k in _BUILD_KEYS} | {'num_classes': num_classes}
    if cfg.model_kwargs:
        build['backbone_kwargs'] = dict(cfg.model_kwargs)
    return {'task': 'detection', 'detector': build, 'categories': {str(k): v for k, v in categories.items()},
            **extra}


def load_detector(source: Any, use_ema: bool = False) -> nn.Module:
    """The detector of a ``banet detect train`` run or checkpoint folder, in eval mode (same resolution rules as
    :func:`banet.io.find_checkpoint`); ``model.categories`` maps category ids to names."""
    weights, config_file = find_checkpoint(source, use_ema)
    config = json.loads(config_file.read_text()) if config_file else None
    if not config or config.get('task') != 'detection':
        raise BanetError(f'{source} is not a detection checkpoint (its config.json has no "task": "detection"); '
                         'give a banet detect train run folder')
    model = create_detector(**config['detector'])
    model.load_state_dict(load_state_dict_file(weights))
    model.categories = {int(k): v for k, v in config['categories'].items()}
    return model.eval()



def _eval_loader(cfg: Any, masks: bool) -> DataLoader:
    dataset = CocoDetectionDataset(cfg.data_dir, cfg.val_split, masks=masks, drop_crowd=False)
    return build_loader(dataset, cfg.batch_size, train=False, num_workers=cfg.workers)



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
        loader = shuffled_loader(self.train_set, cfg.batch_size, cfg.workers, cfg.seed, info, collate_detection)
        return Data(loader, _eval_loader(cfg, self.masks) if info.primary else None, {'loader': loader.generator})

    def loss(self, model: nn.Module, batch: Any):
        images, targets = batch
        images = [image.to(self.device) for image in images]
        return model(images, [_to(t, self.device) for t in targets]), len(images)

    def evaluate(self, model: nn.Module, loader: Any, info: DistInfo, precision: Precision,
                 progress: bool) -> Dict[str, float]:
        metrics = evaluate_detector(model, bar(loader, 'eval', progress), loader.dataset.coco, device=info.device,
                                    autocast_dtype=precision.dtype) if info.primary else None
        metrics = broadcast_object(metrics, info)
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


def validate_detector(config: DetectValidateConfig) -> Dict[str, Any]:
    """COCO box (and mask) AP of a detection checkpoint on ``config.val_split``; written as JSON."""
    cfg = config
    cfg.check()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    weights, _ = find_checkpoint(cfg.checkpoint)
    model = load_detector(cfg.checkpoint)
    device = torch.device(cfg.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    precision = resolve_precision(cfg.amp, cfg.amp_dtype, False, device)
    loader = _eval_loader(cfg, masks=hasattr(model, 'roi_heads') and model.roi_heads.has_mask())
    metrics = evaluate_detector(model.to(device), loader, loader.dataset.coco, device=device,
                                autocast_dtype=precision.dtype)
    result = {'checkpoint': str(weights), 'split': cfg.val_split, 'images': len(loader.dataset), **metrics}
    out = Path(cfg.results_file) if cfg.results_file else weights.parent / f'validate-{cfg.val_split}.json'
    save_json_file(result, out)
    return {**result, 'results_file': str(out)}
