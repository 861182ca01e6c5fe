"""Segmentation as a task of the run layer (:func:`banet.runs.fit`).

A run folder like ``banet train``'s: ``RUN/config.yaml`` (the options), ``RUN/last/`` and ``RUN/best/``
(``model.safetensors`` + ``config.json`` describing the segmenter, its input and the category names; ``last/``
also ``train_state.pt``), ``RUN/metrics.csv`` and ``RUN/summary.png``. The best checkpoint is the one with the
highest mean IoU.

Training batches are random crops of ``crop_size`` (padded with the ignore label 255), so they stack; evaluation
resizes each image's shorter side to ``base_size`` and runs one image at a time (torchvision's reference), so
every image is measured whole and alone. Under torchrun every process scores its share of the validation images and
the confusion matrices are summed (:func:`evaluate_segmenter`).
"""
from typing import Any, Dict, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..dense.loader import build_loader, eval_shard
from ..errors import BanetError
from ..runs import Data, DistInfo, Precision, default_name, fit
from ..runs.initial import backbone_weights, class_count, report_backbone
from ..runs.loader import shuffled_loader
from .builders import create_segmenter
from .checkpoint import normalisation, segmenter_config
from .data import CocoSegmentationDataset, eval_transforms, train_transforms
from .evaluate import evaluate_segmenter
from .loss import SegmentationLoss
from .options import SegmentTrainConfig

__all__ = ['SegmentTask', 'train_segmenter']

_METRICS = ('miou', 'pixel_acc')


def _eval_loader(cfg: SegmentTrainConfig, input_config: Mapping[str, Any], info: DistInfo) -> DataLoader:
    """This process's share of the validation images, one at a time (every image on exactly one process)."""
    dataset = CocoSegmentationDataset(cfg.data_dir, cfg.val_split, eval_transforms(input_config['base_size']),
                                      mean=input_config['mean'], std=input_config['std'])
    return build_loader(eval_shard(dataset, info), 1, train=False, num_workers=cfg.workers, collate_fn=None)


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
        mean, std = normalisation(cfg.backbone)
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
        self.eval_loader = _eval_loader(cfg, {'base_size': cfg.base_size, 'mean': mean, 'std': std}, info)

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
        shown = tqdm(loader, desc='eval', disable=not progress, leave=False, unit='img')
        with precision.autocast(info.device)():
            metrics = evaluate_segmenter(model, shown, self.num_classes, device=info.device, dist=info)
        return {k: metrics[k] for k in _METRICS}

    def checkpoint_config(self, model: nn.Module, **extra: Any) -> Dict[str, Any]:
        return segmenter_config(self.cfg, self.num_classes, self.categories, **extra)

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
