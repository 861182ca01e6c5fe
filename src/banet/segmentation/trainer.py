"""Segmentation as a task of the run layer (:func:`banet.runs.fit`), and the validation and loading of segmenters.

A run folder like ``banet train``'s: ``RUN/config.yaml`` (the options), ``RUN/last/`` and ``RUN/best/``
(``model.safetensors`` + ``config.json`` describing the segmenter, its input and the category names; ``last/``
also ``train_state.pt``), ``RUN/metrics.csv`` and ``RUN/summary.png``. The best checkpoint is the one with the
highest mean IoU.

Training batches are random crops of ``crop_size`` (padded with the ignore label 255), so they stack; evaluation
resizes each image's shorter side to ``base_size`` and runs one image at a time (torchvision's reference), so
every image is measured whole and alone. Evaluation runs on the first process and its numbers reach every
process.
"""
import json
from pathlib import Path
from typing import Any, Dict, Mapping

import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..detection.data import build_loader
from ..errors import BanetError
from ..io import find_checkpoint, load_state_dict_file, save_json_file
from ..runs import Data, DistInfo, Precision, broadcast_object, default_name, fit, resolve_precision
from ..runs.initial import backbone_weights, class_count, report_backbone
from ..runs.loader import shuffled_loader
from .builders import create_segmenter
from .data import CocoSegmentationDataset, eval_transforms, train_transforms
from .evaluate import evaluate_segmenter
from .loss import SegmentationLoss
from .metrics import named_iou
from .options import SegmentTrainConfig, SegmentValidateConfig

__all__ = ['SegmentTask', 'train_segmenter', 'validate_segmenter', 'load_segmenter', 'segmenter_config']

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



class SegmentTask:
    """Semantic segmentation on COCO-layout data: what :func:`banet.runs.fit` needs of it."""
    name = 'segment'
    identity = ('arch', 'backbone')
    best_metric, best_label = 'miou', 'mIoU'
    train_columns = ('train_loss', 'train_img_s', 'lr')
    eval_columns = _METRICS
    panels = (('loss', ('train_loss',)), ('validation', _METRICS))

    def __init__(self) -> None:
        self.criterion = SegmentationLoss()

    def run_name(self, cfg: SegmentTrainConfig) -> str:
        return default_name(cfg.arch, cfg.backbone)

    def prepare(self, cfg: SegmentTrainConfig, info: DistInfo) -> None:
        self.cfg = cfg
        mean, std = _normalisation(cfg.backbone)
        self.train_set = CocoSegmentationDataset(cfg.data_dir, cfg.train_split,
                                                 train_transforms(cfg.base_size, cfg.crop_size, cfg.hflip),
                                                 mean=mean, std=std)
        coco = self.train_set.coco
        self.categories = {c['id']: c['name'] for c in coco.loadCats(coco.getCatIds())}
        self.num_classes = class_count(self.categories, cfg.num_classes)
        if len(self.train_set) < cfg.batch_size * info.world_size:
            raise BanetError(f'{len(self.train_set)} training images are fewer than one batch of {cfg.batch_size} '
                             f'x {info.world_size} process(es): lower --batch-size')
        # a missing split fails before the run starts
        self.eval_loader = _eval_loader(cfg.data_dir, cfg.val_split, {'base_size': cfg.base_size, 'mean': mean,
                                                                      'std': std}, cfg.workers) \
            if info.primary else None

    def build(self, cfg: SegmentTrainConfig, info: DistInfo, precision: Precision) -> nn.Module:
        self.device, self.channels_last = info.device, precision.channels_last
        model = create_segmenter(cfg.arch, cfg.backbone, self.num_classes, output_stride=cfg.output_stride,
                                 aux=cfg.aux, backbone_weights=backbone_weights(cfg.backbone_checkpoint,
                                                                                cfg.trust_pickle),
                                 norm=cfg.norm, trainable_layers=cfg.trainable_layers,
                                 backbone_kwargs=cfg.model_kwargs)
        report_backbone(cfg.backbone_checkpoint, model.backbone.features.weights_report, info)
        return model

    def loaders(self, cfg: SegmentTrainConfig, info: DistInfo, model: nn.Module) -> Data:
        loader = shuffled_loader(self.train_set, cfg.batch_size, cfg.workers, cfg.seed, info)
        return Data(loader, self.eval_loader, {'loader': loader.generator})

    def loss(self, model: nn.Module, batch: Any):
        x, y = batch
        x, y = x.to(self.device), y.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.criterion(model(x), y), x.shape[0]

    def evaluate(self, model: nn.Module, loader: Any, info: DistInfo, precision: Precision,
                 progress: bool) -> Dict[str, float]:
        metrics = _evaluate(model, loader, self.num_classes, info.device, precision, progress) \
            if info.primary else None
        metrics = broadcast_object(metrics, info)
        return {k: metrics[k] for k in _METRICS}

    def checkpoint_config(self, model: nn.Module, **extra: Any) -> Dict[str, Any]:
        config = segmenter_config(self.cfg, self.num_classes, self.categories, **extra)
        if self.cfg.model_kwargs:  # create_segmenter(**config['segmenter']) rebuilds the same backbone
            config['segmenter']['backbone_kwargs'] = dict(self.cfg.model_kwargs)
        return config

    def describe(self, cfg: SegmentTrainConfig, model: nn.Module, info: DistInfo) -> str:
        n_params = sum(p.numel() for p in model.parameters())
        return f'{cfg.arch} over {cfg.backbone}: {n_params:,} parameters, {self.num_classes} classes'


def train_segmenter(config: SegmentTrainConfig) -> Dict[str, Any]:
    """Train ``config.arch`` over ``config.backbone`` on a COCO-layout folder; returns the last row, ``best``
    (mIoU), the run folder and the model. Example::

        from banet.segmentation import SegmentTrainConfig, train_segmenter
        train_segmenter(SegmentTrainConfig(arch='fcn', backbone='ba_resnet18', data_dir='coco', epochs=1,
                                           output='runs', experiment='s'))   # run folder runs/s/
    """
    return fit(SegmentTask(), config)


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
