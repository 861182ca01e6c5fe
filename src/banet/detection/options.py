"""The typed configs of ``banet detect train`` / ``validate``: every option's name, type, default, help and kind.

Defaults are torchvision's detection reference recipe at a small scale; ``configs/detection/`` holds the COCO 1x
recipe (12 epochs, SGD 0.02 at batch 16, frozen BN, stages 2-4 trainable) and the offline scenes demo.
"""
from dataclasses import dataclass
from typing import List, Optional

from ..config import Switch, option
from ..errors import BanetError
from .builders import ARCHS
from .features import NORMS

__all__ = ['DetectTrainConfig', 'DetectValidateConfig']

_MODEL, _DATA, _OPT, _RUN, _MACHINE = 'detector', 'data (COCO layout)', 'optimiser and schedule', 'run', 'machine'


@dataclass
class _DetectData:
    data_dir: Optional[str] = option(None, 'COCO-layout root: DIR/annotations/instances_SPLIT.json, DIR/SPLIT/*',
                                     'machine', metavar='DIR', group=_DATA)
    val_split: str = option('val', 'validation split (val2017 on COCO)', group=_DATA)
    batch_size: int = option(2, 'images per batch and process', flags=('-b',), group=_DATA)
    amp: Switch = option(False, 'autocast (auto: where the hardware runs it natively)', group=_MACHINE)
    amp_dtype: str = option('bfloat16', 'autocast dtype', choices=('bfloat16', 'float16'), group=_MACHINE)
    workers: int = option(0, 'loader processes', 'machine', flags=('-j',), group=_MACHINE)
    device: Optional[str] = option(None, 'cpu, cuda, cuda:1 ... (default: cuda when available)', 'machine',
                                   group=_MACHINE)
    threads: Optional[int] = option(None, 'torch CPU threads', 'machine', group=_MACHINE)
    progress: bool = option(True, 'progress bars', 'machine', group=_MACHINE)
    trust_pickle: bool = option(False, 'allow pickle checkpoints with Python objects (trusted files only)',
                                'machine', group=_MACHINE)

    def check(self) -> None:
        if not self.data_dir:
            raise BanetError('--data-dir DIR is required (DIR/annotations/instances_SPLIT.json and DIR/SPLIT/)')
        if self.batch_size < 1:
            raise BanetError(f'--batch-size must be at least 1, got {self.batch_size}')


@dataclass
class DetectTrainConfig(_DetectData):
    """Everything :func:`banet.detection.train_detector` needs."""
    arch: str = option('fasterrcnn', 'torchvision detector', choices=ARCHS, group=_MODEL)
    backbone: str = option('ba_resnet50', 'timm backbone with features_only (ba_*, bav1_*, resnet*, seresnet*, ...)',
                           group=_MODEL)
    backbone_checkpoint: Optional[str] = option(
        None, 'initialise the backbone from a classification checkpoint: a run folder, a local-dir folder, a '
              '.safetensors file or an official BA-Net checkpoint (the classifier is dropped)', metavar='PATH',
        group=_MODEL)
    num_classes: Optional[int] = option(None, 'classes including background (default: largest category id + 1)',
                                        group=_MODEL)
    trainable_layers: int = option(3, 'backbone stages trained, counted from the last (5: all)', group=_MODEL)
    norm: str = option('frozen', 'backbone norms: frozen (BatchNorm2d and the bridges\' BatchNorm1d) or bn',
                       choices=NORMS, group=_MODEL)
    min_size: int = option(800, 'shorter image side the detector resizes to', group=_MODEL)
    max_size: int = option(1333, 'longest image side the detector resizes to', group=_MODEL)
    fpn_channels: int = option(256, 'FPN width', group=_MODEL)
    train_split: str = option('train', 'training split (train2017 on COCO)', group=_DATA)
    hflip: float = option(0.5, 'horizontal flip probability', group=_DATA)
    scale_jitter: Optional[List[float]] = option(None, 'random zoom range, e.g. 0.8 1.2 (default: off)',
                                                 group=_DATA)
    opt: str = option('momentum', 'timm optimiser (momentum: SGD with momentum, as the detection recipes)',
                      group=_OPT)
    lr: float = option(0.02, 'peak learning rate (0.02 at batch 16)', group=_OPT)
    momentum: float = option(0.9, 'SGD momentum', group=_OPT)
    weight_decay: float = option(1e-4, 'weight decay (not on norms and biases)', group=_OPT)
    clip_grad: Optional[float] = option(None, 'clip the gradients\' total norm', group=_OPT)
    epochs: int = option(12, 'epochs', group=_OPT)
    sched: str = option('multistep', 'timm scheduler: multistep (steps at --decay-milestones), cosine, ...',
                        group=_OPT)
    decay_milestones: List[int] = option([8, 11], 'multistep: epochs where the lr drops', group=_OPT)
    decay_rate: float = option(0.1, 'multistep: lr factor at each milestone', group=_OPT)
    warmup_epochs: int = option(1, 'linear warmup epochs (per update)', group=_OPT)
    warmup_lr: float = option(1e-4, 'learning rate at the start of the warmup', group=_OPT)
    seed: int = option(0, 'random seed', 'run', group=_RUN)
    output: str = option('runs', 'parent folder of runs', 'run', metavar='DIR', group=_RUN)
    experiment: Optional[str] = option(None, 'run folder name (default: ARCH-BACKBONE-TIME)', 'run', group=_RUN)
    resume: Optional[str] = option(None, 'continue the run in this folder (its config.yaml comes first)', 'run',
                                   metavar='DIR', group=_RUN)
    val_interval: int = option(1, 'evaluate every N epochs (and after the last)', group=_RUN)

    def check(self) -> None:
        super().check()
        if self.epochs < 1 or self.val_interval < 1:
            raise BanetError('--epochs and --val-interval must be at least 1')


@dataclass
class DetectValidateConfig(_DetectData):
    """Everything :func:`banet.detection.validate_detector` needs."""
    checkpoint: Optional[str] = option(None, 'a detection run folder, its best/ or last/, or a checkpoint folder',
                                       'run', metavar='PATH', group=_RUN)
    results_file: Optional[str] = option(None, 'where to write the metrics (default: beside the checkpoint)', 'run',
                                         metavar='FILE.json', group=_RUN)

    def check(self) -> None:
        super().check()
        if not self.checkpoint:
            raise BanetError('--checkpoint PATH is required (a banet detect train run folder)')
