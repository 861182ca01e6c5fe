"""The options every command on COCO-layout data shares (``banet detect``, ``banet segment``): data, backbone, the
checkpoint to evaluate; built on the run layer's machine, run folder and optimiser options (:mod:`banet.runs.options`).

Defaults are torchvision's detection and segmentation references' at a small scale; each task's config adds its
model, schedule and augmentation.
"""
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..config import option
from ..errors import BanetError
from ..runs.options import MachineOptions, OptimOptions, RunOptions, positive

__all__ = ['CocoOptions', 'BatchedCocoOptions', 'CocoTrainOptions', 'CheckpointOptions', 'MODEL', 'DATA', 'OPT',
           'RUN', 'MACHINE']

MODEL, DATA, OPT, RUN, MACHINE = 'model', 'data (COCO layout)', 'optimiser and schedule', 'run', 'machine'


@dataclass
class CocoOptions(MachineOptions):
    """Data and machine options of every command on COCO-layout data (``banet detect``, ``banet segment``)."""
    data_dir: Optional[str] = option(None, 'COCO-layout root: DIR/annotations/instances_SPLIT.json, DIR/SPLIT/*',
                                     'machine', metavar='DIR', group=DATA)
    val_split: str = option('val', 'validation split (val2017 on COCO)', group=DATA)
    workers: int = option(0, 'loader processes', 'machine', flags=('-j',), group=MACHINE)

    def check(self) -> None:
        super().check()
        if not self.data_dir:
            raise BanetError('--data-dir DIR is required (DIR/annotations/instances_SPLIT.json and DIR/SPLIT/)')


@dataclass
class BatchedCocoOptions(CocoOptions):
    """:class:`CocoOptions` and a batch size."""
    batch_size: int = option(2, 'images per batch and process', flags=('-b',), group=DATA)

    def check(self) -> None:
        super().check()
        positive(self, 'batch_size')


@dataclass
class CocoTrainOptions(BatchedCocoOptions, RunOptions, OptimOptions):
    """What every training command on COCO-layout data shares: backbone, classes, and the run layer's run and
    optimiser options with torchvision's reference defaults (SGD with momentum, schedule stepped per update).

    The task's own class adds ``arch``, ``lr``, ``epochs``, the schedule and its augmentation.
    """
    sched_on_updates = True  # the schedule steps per update (torchvision's references); not an option
    backbone: str = option('ba_resnet50', 'timm backbone with features_only (ba_*, bav1_*, resnet*, seresnet*, ...)',
                           group=MODEL)
    backbone_checkpoint: Optional[str] = option(
        None, 'initialise the backbone from a classification checkpoint: a run folder, a local-dir folder, a '
              '.safetensors file or an official BA-Net checkpoint (the classifier is dropped)', metavar='PATH',
        group=MODEL)
    model_kwargs: Dict[str, Any] = option({}, 'keyword arguments of the backbone constructor, e.g. ba_reduction=8 '
                                          'ba_version=v1 (YAML: a mapping)', metavar='KEY=VALUE', group=MODEL)
    num_classes: Optional[int] = option(None, 'classes including background (default: largest category id + 1)',
                                        group=MODEL)
    train_split: str = option('train', 'training split (train2017 on COCO)', group=DATA)
    opt: str = option('momentum', 'timm optimiser (momentum: SGD with momentum, as torchvision\'s references)',
                      group=OPT)
    weight_decay: float = option(1e-4, 'weight decay (not on norms and biases)', group=OPT)
    seed: int = option(0, 'random seed', 'run', group=RUN)
    experiment: Optional[str] = option(None, 'run folder name (default: ARCH-BACKBONE-TIME)', 'run', group=RUN)
    epochs: int = option(12, 'epochs', group=OPT)


@dataclass
class CheckpointOptions:
    """The checkpoint to evaluate and where its metrics go: what every COCO-layout validate command adds (mixed in
    before its data options; ``trainer`` names the command that makes such checkpoints)."""
    trainer = 'banet detect train'
    checkpoint: Optional[str] = option(None, 'a run folder, its best/ or last/, or a checkpoint folder', 'run',
                                       metavar='PATH', group=RUN)
    results_file: Optional[str] = option(None, 'where to write the metrics (default: beside the checkpoint)', 'run',
                                         metavar='FILE.json', group=RUN)

    def check(self) -> None:
        super().check()
        if not self.checkpoint:
            raise BanetError(f'--checkpoint PATH is required (a {self.trainer} run folder)')
