"""The typed configs of training and validation: every option's name, type, default, help and kind.

Option names follow timm's ``train.py`` / ``validate.py`` where they overlap. A YAML config file (``-c``) holds
``name: value`` pairs of these fields; the command line overrides it (on/off options have a ``--no-`` form).
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..config import option
from ..errors import BanetError
from ..runs.options import COMPILE_MODES, MachineOptions, OptimOptions, RunOptions, default_workers, positive

__all__ = ['DATASETS', 'COMPILE_MODES', 'DataOptions', 'TrainConfig', 'ValidateConfig', 'default_workers']

DATASETS = ('folder', 'fashion_mnist', 'cifar10', 'cifar100')
_STREAMED = ('wds/', 'hfds/', 'hfids/', 'tfds/')


def dataset_name(text: str) -> str:
    """The command line's check of ``--dataset``: one of :data:`DATASETS` or a timm dataset name."""
    if text not in DATASETS and not text.startswith(_STREAMED):
        raise ValueError(f'invalid choice: {text!r} (choose from {", ".join(DATASETS)}, or a timm dataset name '
                         'such as wds/NAME or hfds/NAME)')
    return text



_DATA, _MACHINE = 'data and model', 'this machine'


@dataclass
class DataOptions(MachineOptions):
    """What both training and validation read: model, dataset, preprocessing, and this machine's options."""
    model: Optional[str] = option(None, 'timm model name, e.g. ba_resnet20_cifar or ba_resnet50', 'run',
                                  group=_DATA)
    dataset: str = option('folder', 'folder: an ImageNet-layout tree of class folders; fashion_mnist, cifar10, '
                          'cifar100: held in memory; or a timm dataset name such as wds/NAME or hfds/NAME '
                          '(WebDataset shards or a Hugging Face dataset under --data-dir)', group=_DATA,
                          parse=dataset_name)
    data_dir: Optional[str] = option(None, 'dataset root (fashion_mnist: default /usr/share/datasets/fashion-mnist)',
                                     'machine', metavar='DIR', group=_DATA)
    download: bool = option(False, 'let torchvision download fashion_mnist/cifar into --data-dir if absent',
                            'machine', group=_DATA)
    train_split: str = option('train', 'folder/wds/hfds: the training split', group=_DATA)
    val_split: str = option('val', 'folder/wds/hfds: the validation split', group=_DATA)
    num_classes: Optional[int] = option(None, 'classes (default: from the dataset)', group=_DATA)
    in_chans: Optional[int] = option(None, 'input channels (default: from the dataset)', group=_DATA)
    img_size: Optional[int] = option(None, 'input size (default: the model\'s; 28 for fashion_mnist, 32 for cifar)',
                                     group=_DATA)
    crop_pct: Optional[float] = option(None, 'eval centre-crop fraction (default: model cfg)', group=_DATA)
    mean: Optional[List[float]] = option(None, 'normalisation mean per channel (default: model cfg)', group=_DATA)
    std: Optional[List[float]] = option(None, 'normalisation std per channel (default: model cfg)', group=_DATA)
    interpolation: str = option('', 'eval resize interpolation (default: model cfg)', group=_DATA)
    batch_size: int = option(128, 'batch size per process', flags=('-b',), group=_DATA)
    workers: int = option(default_workers(), 'loader processes for image folders (default: at most the CPUs)',
                          'machine', flags=('-j',), group=_MACHINE)

    @property
    def streamed(self) -> bool:
        """A timm dataset name (``wds/…``, ``hfds/…``) rather than one of banet's :data:`DATASETS`."""
        return self.dataset.startswith(_STREAMED)

    def check(self) -> None:
        """Value checks that need no files (a BanetError names the option)."""
        if self.dataset not in DATASETS and not self.streamed:
            raise BanetError(f'unknown dataset {self.dataset!r}: use one of {", ".join(DATASETS)}, or a timm '
                             'dataset name such as wds/NAME or hfds/NAME')
        super().check()
        positive(self, 'batch_size')
        if self.workers < 0:
            raise BanetError(f'--workers must be >= 0, got {self.workers}')


_MODEL, _OPT, _SCHED, _AUG, _RUN = ('model', 'optimiser', 'schedule', 'augmentation and regularisation', 'run')


@dataclass
class TrainConfig(DataOptions, RunOptions, OptimOptions):
    """Everything ``banet train`` / :func:`banet.train.train` needs: recipe, machine and run options."""
    pretrained: bool = option(False, 'start from timm pretrained weights (may download)', group=_MODEL)
    initial_checkpoint: Optional[str] = option(
        None, 'start from these weights: a run folder, a checkpoint folder, a .safetensors file or an official '
              'BA-Net checkpoint', metavar='PATH', group=_MODEL)
    model_kwargs: Dict[str, Any] = option({}, 'keyword arguments of the model constructor, e.g. ba_reduction=8 '
                                          'ba_version=v1 (YAML: a mapping)', metavar='KEY=VALUE', group=_MODEL)
    drop: float = option(0.0, 'dropout before the classifier', group=_MODEL)
    drop_path: Optional[float] = option(None, 'stochastic depth rate', group=_MODEL)
    sync_bn: bool = option(False, 'SyncBatchNorm across processes (GPU only)', group=_MODEL)
    dist_bn: str = option('reduce', 'after each epoch, average (reduce) or copy rank 0\'s (broadcast) BN statistics '
                          'across processes; an empty string leaves them', choices=('reduce', 'broadcast', ''),
                          group=_MODEL)
    sched: str = option('cosine', 'timm scheduler: cosine, step, multistep, plateau, ...', group=_SCHED)
    sched_on_updates: bool = option(False, 'step the schedule per update, not per epoch', group=_SCHED)
    min_lr: float = option(0.0, 'final learning rate of cosine schedules', group=_SCHED)
    warmup_epochs: float = option(0.0, 'linear warmup epochs (a fraction of an epoch with --sched-on-updates)',
                                  group=_SCHED)
    warmup_prefix: bool = option(False, 'warmup does not count into the cosine epochs', group=_SCHED)
    decay_epochs: float = option(30.0, 'step schedule: epochs between decays', group=_SCHED)
    decay_milestones: List[int] = option([30, 60], 'multistep milestones', group=_SCHED)
    decay_rate: float = option(0.1, 'step schedules: decay factor', group=_SCHED)
    cooldown_epochs: int = option(0, 'epochs at min-lr after the schedule', group=_SCHED)
    smoothing: float = option(0.0, 'label smoothing', group=_AUG)
    hflip: float = option(0.5, 'horizontal flip probability', group=_AUG)
    pad_crop: int = option(4, 'in-memory datasets: random crop after padding by this many pixels (0: off)',
                           group=_AUG)
    scale: List[float] = option([0.08, 1.0], 'image folders: RandomResizedCrop scale', group=_AUG)
    ratio: List[float] = option([3 / 4, 4 / 3], 'image folders: RandomResizedCrop ratio', group=_AUG)
    train_interpolation: str = option('random', 'image folders: training resize interpolation', group=_AUG)
    color_jitter: float = option(0.4, 'image folders: colour jitter strength', group=_AUG)
    aa: Optional[str] = option(None, 'image folders: timm auto-augment, e.g. rand-m9-mstd0.5-inc1', group=_AUG)
    reprob: float = option(0.0, 'image folders: random erasing probability', group=_AUG)
    remode: str = option('pixel', 'image folders: random erasing mode', group=_AUG)
    mixup: float = option(0.0, 'mixup alpha (0: off)', group=_AUG)
    cutmix: float = option(0.0, 'cutmix alpha (0: off)', group=_AUG)
    mixup_prob: float = option(1.0, 'probability of mixup or cutmix per batch', group=_AUG)
    mixup_switch_prob: float = option(0.5, 'probability of cutmix when both are on', group=_AUG)
    mixup_mode: str = option('batch', 'mixup mode', choices=('batch', 'pair', 'elem'), group=_AUG)
    profile_data: bool = option(False, 'report the share of step time spent on data', 'machine', group=_RUN)

    def check(self) -> None:
        super().check()
        if not self.model:
            raise BanetError('--model is required (e.g. ba_resnet20_cifar), on the command line or in the config')
        if (self.mixup or self.cutmix) and self.batch_size % 2:
            raise BanetError('mixup/cutmix need an even --batch-size')
        if not self.sched_on_updates and self.warmup_epochs != int(self.warmup_epochs):
            raise BanetError(f'--warmup-epochs {self.warmup_epochs} is a fraction of an epoch: add '
                             '--sched-on-updates (a per-epoch schedule warms up in whole epochs)')


@dataclass
class ValidateConfig(DataOptions):
    """Everything ``banet validate`` / :func:`banet.train.validate` needs."""
    checkpoint: Optional[str] = option(
        None, 'a run folder, its last/ or best/ folder, a checkpoint folder, a .safetensors file or an official '
              'BA-Net checkpoint (with --model)', 'run', metavar='PATH', group='checkpoint')
    pretrained: bool = option(False, 'without --checkpoint: timm\'s pretrained weights of --model (may download)',
                              'run', group='checkpoint')
    use_ema: bool = option(False, 'evaluate the EMA weights of the checkpoint', 'run', group='checkpoint')
    results_file: Optional[str] = option(None, 'where to write the result (default: beside the checkpoint, or '
                                               './validate-DATASET.json)', 'run', metavar='FILE.json',
                                         group='checkpoint')
