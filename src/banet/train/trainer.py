"""``train(config)``: classification as a task of the run layer (:func:`banet.runs.fit`), one process or torchrun.

What is classification's own: the timm model (``model_kwargs`` such as ``ba_reduction`` reach its blocks), the
dataset and timm's loaders, mixup/cutmix and the (soft-target, smoothed) cross-entropy, top-1/top-5 evaluation,
and the ``config.json`` that ``timm.create_model('local-dir:FOLDER')`` rebuilds the model from. ``best/`` is the
epoch with the highest validation top-1.
"""
from pathlib import Path
from typing import Any, Dict, List, Optional

import timm
import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from torch import nn

from ..errors import BanetError, MissingFileError
from ..io import check_model_name, load_weights, model_config, model_data_config
from ..runs import Data, DistInfo, Precision, default_name, fit
from .data import DataSpec, build_eval_loader, build_train_loader, dataset_spec
from .evaluate import evaluate
from .options import DataOptions, TrainConfig

__all__ = ['check_config', 'data_config_for', 'ClassifyTask', 'train']

PANELS = (('loss', ('train_loss', 'val_loss')), ('validation accuracy (%)', ('val_top1', 'val_top5')))


def check_config(cfg: DataOptions, splits: List[str]) -> DataSpec:
    """Every check that needs no model or data loading: fail before any work is done."""
    cfg.check()
    if not cfg.model:
        raise BanetError('--model is required (e.g. ba_resnet20_cifar), on the command line or in the config')
    check_model_name(cfg.model)
    if isinstance(cfg, TrainConfig):
        if cfg.sync_bn and (cfg.device or ('cuda' if torch.cuda.is_available() else 'cpu')).startswith('cpu'):
            raise BanetError('--sync-bn needs CUDA devices (PyTorch\'s SyncBatchNorm does not run on the CPU); '
                             'leave it off, --dist-bn reduce averages the statistics after each epoch')
        if cfg.initial_checkpoint and not Path(cfg.initial_checkpoint).exists():
            raise MissingFileError(f'--initial-checkpoint {cfg.initial_checkpoint} does not exist')
    return dataset_spec(cfg, splits)


def data_config_for(cfg: DataOptions, model: nn.Module, spec: DataSpec) -> Dict[str, Any]:
    """timm's data config of the model, with the dataset's size/channels and any --mean/--std/... given."""
    return model_data_config(model, img_size=cfg.img_size or spec.img_size, mean=cfg.mean, std=cfg.std,
                             crop_pct=cfg.crop_pct, interpolation=cfg.interpolation)


class ClassifyTask:
    """Image classification with a timm model: what :func:`banet.runs.fit` needs of it."""
    name = 'classify'
    identity = ('model',)
    best_metric, best_label = 'val_top1', 'val top-1 (%)'
    train_columns = ('train_loss', 'train_img_s', 'first_step_s', 'data_share', 'lr')
    eval_columns = ('val_loss', 'val_top1', 'val_top5', 'val_img_s')
    panels = PANELS

    def __init__(self) -> None:
        self.spec: Optional[DataSpec] = None
        self.mixup: Optional[Mixup] = None
        self.criterion: nn.Module = nn.CrossEntropyLoss()
        self.channels_last = False

    def run_name(self, cfg: TrainConfig) -> str:
        return default_name(cfg.model, cfg.dataset)

    def prepare(self, cfg: TrainConfig, info: DistInfo) -> None:
        self.spec = check_config(cfg, [cfg.train_split, cfg.val_split])

    def build(self, cfg: TrainConfig, info: DistInfo, precision: Precision) -> nn.Module:
        spec = self.spec
        self.num_classes = cfg.num_classes or spec.num_classes
        if self.num_classes < spec.num_classes:
            raise BanetError(f'--num-classes {self.num_classes} is below the {spec.num_classes} classes of the '
                             'dataset')
        self.names = spec.class_names if self.num_classes == spec.num_classes else None  # saved in config.json
        model = timm.create_model(
            cfg.model, pretrained=cfg.pretrained, num_classes=self.num_classes, in_chans=cfg.in_chans or spec.in_chans,
            drop_rate=cfg.drop, **({'drop_path_rate': cfg.drop_path} if cfg.drop_path is not None else {}),
            **cfg.model_kwargs)
        if cfg.initial_checkpoint:
            load_weights(model, cfg.initial_checkpoint, trust_pickle=cfg.trust_pickle)
        self.data_config = data_config_for(cfg, model, spec)
        if cfg.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.channels_last = precision.channels_last
        if cfg.mixup > 0 or cfg.cutmix > 0:
            self.mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                               switch_prob=cfg.mixup_switch_prob, mode=cfg.mixup_mode, label_smoothing=cfg.smoothing,
                               num_classes=self.num_classes)
            self.criterion = SoftTargetCrossEntropy()  # Mixup applies the label smoothing
        elif cfg.smoothing:
            self.criterion = LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
        return model

    def loaders(self, cfg: TrainConfig, info: DistInfo, model: nn.Module) -> Data:
        train_loader = build_train_loader(cfg, self.data_config, info.rank, info.world_size, info.device)
        val_loader = build_eval_loader(cfg, self.data_config, info.rank, info.world_size, info.device)
        return Data(train_loader, val_loader, {'loader': train_loader.generator})  # the shuffling generator

    def loss(self, model: nn.Module, batch: Any):
        x, y = batch
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.mixup is not None:
            x, y = self.mixup(x, y)
        return self.criterion(model(x), y), x.shape[0]

    def evaluate(self, model: nn.Module, loader: Any, info: DistInfo, precision: Precision,
                 progress: bool) -> Dict[str, float]:
        result = evaluate(model, loader, info.device, precision.autocast(info.device), precision.channels_last,
                          progress)
        return {f'val_{k}': v for k, v in result.items() if k != 'count'}

    def checkpoint_config(self, model: nn.Module, **extra: Any) -> Dict[str, Any]:
        return model_config(model, self.data_config, self.names, **extra)

    def describe(self, cfg: TrainConfig, model: nn.Module, info: DistInfo) -> str:
        n_params = sum(p.numel() for p in model.parameters())
        return f'{cfg.model}: {n_params:,} parameters, data {self.data_config["input_size"]}'


def train(config: TrainConfig) -> Dict[str, Any]:
    """Train ``config.model`` on ``config.dataset``; returns the last epoch's metrics, ``best`` (top-1), the run
    folder and the model.

    Example::

        from banet.train import TrainConfig, train
        result = train(TrainConfig(model='ba_resnet20_cifar', dataset='folder', data_dir='digits', epochs=1,
                                   batch_size=32, output='runs', experiment='py'))   # run folder runs/py/
    """
    return fit(ClassifyTask(), config)
