"""The typed configs of ``banet detect train`` / ``validate``: every option's name, type, default, help and kind.

Defaults are torchvision's detection reference recipe at a small scale; ``configs/detection/`` holds the COCO 1x
recipe (12 epochs, SGD 0.02 at batch 16, frozen BN, stages 2-4 trainable) and the offline scenes demo. The options
every COCO-layout command shares (data, backbone, checkpoint) are :mod:`banet.dense.options`; the machine, run
folder and optimiser options the run layer's (:mod:`banet.runs.options`).
"""
from dataclasses import dataclass
from typing import List, Optional

from ..config import option
from ..dense.features import NORMS
from ..dense.options import DATA, MODEL, OPT, BatchedCocoOptions, CheckpointOptions, CocoTrainOptions
from .builders import ARCHS

__all__ = ['DetectTrainConfig', 'DetectValidateConfig']


@dataclass
class DetectTrainConfig(CocoTrainOptions):
    """Everything :func:`banet.detection.train_detector` needs."""
    arch: str = option('fasterrcnn', 'torchvision detector', choices=ARCHS, group=MODEL)
    trainable_layers: int = option(3, 'backbone stages trained, counted from the last (5: all)', group=MODEL)
    norm: str = option('frozen', 'backbone norms: frozen (BatchNorm2d and the bridges\' BatchNorm1d) or bn',
                       choices=NORMS, group=MODEL)
    min_size: int = option(800, 'shorter image side the detector resizes to', group=MODEL)
    max_size: int = option(1333, 'longest image side the detector resizes to', group=MODEL)
    fpn_channels: int = option(256, 'FPN width', group=MODEL)
    hflip: float = option(0.5, 'horizontal flip probability', group=DATA)
    scale_jitter: Optional[List[float]] = option(None, 'random zoom range, e.g. 0.8 1.2 (default: off)',
                                                 group=DATA)
    lr: float = option(0.02, 'peak learning rate (0.02 at batch 16)', group=OPT)
    sched: str = option('multistep', 'timm scheduler: multistep (steps at --decay-milestones), cosine, ...',
                        group=OPT)
    decay_milestones: List[int] = option([8, 11], 'multistep: epochs where the lr drops', group=OPT)
    decay_rate: float = option(0.1, 'multistep: lr factor at each milestone', group=OPT)
    warmup_epochs: float = option(1.0, 'linear warmup epochs, stepped per update (0.5: half an epoch)', group=OPT)
    warmup_lr: float = option(1e-4, 'learning rate at the start of the warmup', group=OPT)


@dataclass
class DetectValidateConfig(CheckpointOptions, BatchedCocoOptions):
    """Everything :func:`banet.detection.validate_detector` needs."""
