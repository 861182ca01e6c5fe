"""Command-line options of ``banet train`` / ``banet validate`` and YAML config files whose values they override.

Option names follow timm's ``train.py`` / ``validate.py`` where they overlap. A config file holds ``key: value``
pairs whose keys are the options' destinations (``batch_size``, ``warmup_epochs``, ...).
"""
import argparse
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

__all__ = ['DATASETS', 'ConfigArgumentParser', 'add_data_args', 'add_train_args', 'add_validate_args',
           'check_config_keys', 'load_config_file', 'read_yaml_mapping', 'resolved_config']

DATASETS = ('folder', 'fashion_mnist', 'cifar10', 'cifar100')
# dests that describe the invocation, not the run
_NOT_CONFIG = {'command', 'run', 'config'}


def _float_list(n: Optional[int] = None):
    return dict(type=float, nargs=n or '+', metavar='F')


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Dataset, model and input options shared by train and validate."""
    p.add_argument('-c', '--config', default=None, metavar='FILE.yaml',
                   help='YAML file of option values; options given on the command line override it')
    g = p.add_argument_group('data and model')
    g.add_argument('--model', default=None, help='timm model name, e.g. ba_resnet20_cifar or ba_resnet50')
    g.add_argument('--dataset', default='folder', choices=DATASETS,
                   help='folder: an ImageNet-layout tree of class folders (default); fashion_mnist, cifar10, '
                        'cifar100: torchvision datasets held in memory')
    g.add_argument('--data-dir', default=None, metavar='DIR',
                   help='dataset root (fashion_mnist default: /usr/share/datasets/fashion-mnist)')
    g.add_argument('--download', action='store_true',
                   help='let torchvision download fashion_mnist/cifar into --data-dir if it is not there')
    g.add_argument('--train-split', default='train', help='folder: training sub-folder (default: train)')
    g.add_argument('--val-split', default='val', help='folder: validation sub-folder (default: val)')
    g.add_argument('--num-classes', type=int, default=None, help='classes (default: from the dataset)')
    g.add_argument('--in-chans', type=int, default=None, help='input channels (default: from the dataset)')
    g.add_argument('--img-size', type=int, default=None,
                   help='input size (default: the model\'s; 28 for fashion_mnist, 32 for cifar)')
    g.add_argument('--crop-pct', type=float, default=None, help='eval centre-crop fraction (default: model cfg)')
    g.add_argument('--mean', default=None, help='normalisation mean per channel (default: model cfg)',
                   **_float_list())
    g.add_argument('--std', default=None, help='normalisation std per channel (default: model cfg)', **_float_list())
    g.add_argument('--interpolation', default='', help='eval resize interpolation (default: model cfg)')
    g.add_argument('-b', '--batch-size', type=int, default=128, help='batch size per process (default: 128)')
    g.add_argument('-j', '--workers', type=int, default=4, help='loader processes for --dataset folder')
    g.add_argument('--channels-last', action='store_true', help='use channels_last memory format')
    g.add_argument('--amp', action='store_true', help='mixed precision (autocast) with --amp-dtype')
    g.add_argument('--amp-dtype', default='bfloat16', choices=('bfloat16', 'float16'),
                   help='autocast dtype (default: bfloat16; float16 uses a loss scaler)')
    g.add_argument('--torchcompile', nargs='?', const='inductor', default=None, metavar='BACKEND',
                   help='torch.compile the model (backend, default inductor)')
    g.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ... (default: cuda when available)')
    g.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s choice)')
    g.add_argument('--no-progress', action='store_true', help='no progress bars')
    g.add_argument('--trust-pickle', action='store_true',
                   help='allow loading pickle checkpoints with Python objects (only files you trust)')


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Training options (optimiser, schedule, augmentation, regularisation, run management)."""
    add_data_args(p)
    g = p.add_argument_group('model')
    g.add_argument('--pretrained', action='store_true', help='start from timm pretrained weights (may download)')
    g.add_argument('--initial-checkpoint', default=None, metavar='FILE', help='start from these weights')
    g.add_argument('--drop', type=float, default=0.0, help='dropout before the classifier')
    g.add_argument('--drop-path', type=float, default=None, help='stochastic depth rate')
    g.add_argument('--sync-bn', action='store_true', help='SyncBatchNorm across processes (GPU only)')
    g.add_argument('--dist-bn', default='reduce', choices=('reduce', 'broadcast', ''),
                   help='after each epoch, average (reduce, default) or copy rank 0\'s (broadcast) BN '
                        'statistics across processes; an empty string leaves them')
    g = p.add_argument_group('optimiser')
    g.add_argument('--opt', default='sgd', help='timm optimiser name: sgd (nesterov), momentum, adamw, ...')
    g.add_argument('--opt-eps', type=float, default=None, help='optimiser epsilon')
    g.add_argument('--opt-betas', default=None, help='Adam betas', **_float_list())
    g.add_argument('--momentum', type=float, default=0.9, help='SGD momentum (default: 0.9)')
    g.add_argument('--weight-decay', type=float, default=5e-4,
                   help='weight decay (not applied to norms and biases; default 5e-4)')
    g.add_argument('--clip-grad', type=float, default=None, help='clip gradients at this norm/value')
    g.add_argument('--clip-mode', default='norm', choices=('norm', 'value', 'agc'), help='gradient clipping mode')
    g.add_argument('--grad-accum-steps', type=int, default=1, help='micro-batches per optimiser step')
    g = p.add_argument_group('schedule')
    g.add_argument('--sched', default='cosine', help='timm scheduler: cosine, step, multistep, plateau, ...')
    g.add_argument('--sched-on-updates', action='store_true', help='step the schedule per update, not per epoch')
    g.add_argument('--lr', type=float, default=0.1, help='peak learning rate (default: 0.1)')
    g.add_argument('--warmup-lr', type=float, default=1e-5, help='learning rate at the start of the warmup')
    g.add_argument('--min-lr', type=float, default=0.0, help='final learning rate of cosine schedules')
    g.add_argument('--epochs', type=int, default=10, help='epochs to train (default: 10)')
    g.add_argument('--warmup-epochs', type=int, default=0, help='linear warmup epochs')
    g.add_argument('--warmup-prefix', action='store_true', help='warmup does not count into the cosine epochs')
    g.add_argument('--decay-epochs', type=float, default=30, help='step schedule: epochs between decays')
    g.add_argument('--decay-milestones', type=int, nargs='+', default=[30, 60], help='multistep milestones')
    g.add_argument('--decay-rate', type=float, default=0.1, help='step schedules: decay factor')
    g.add_argument('--cooldown-epochs', type=int, default=0, help='epochs at min-lr after the schedule')
    g = p.add_argument_group('augmentation and regularisation')
    g.add_argument('--smoothing', type=float, default=0.0, help='label smoothing')
    g.add_argument('--hflip', type=float, default=0.5, help='horizontal flip probability')
    g.add_argument('--pad-crop', type=int, default=4,
                   help='in-memory datasets: random crop after padding by this many pixels (0: off)')
    g.add_argument('--scale', default=[0.08, 1.0], help='folder: RandomResizedCrop scale', **_float_list(2))
    g.add_argument('--ratio', default=[3 / 4, 4 / 3], help='folder: RandomResizedCrop ratio', **_float_list(2))
    g.add_argument('--train-interpolation', default='random', help='folder: training resize interpolation')
    g.add_argument('--color-jitter', type=float, default=0.4, help='folder: colour jitter strength')
    g.add_argument('--aa', default=None, help='folder: timm auto-augment, e.g. rand-m9-mstd0.5-inc1')
    g.add_argument('--reprob', type=float, default=0.0, help='folder: random erasing probability')
    g.add_argument('--remode', default='pixel', help='folder: random erasing mode')
    g.add_argument('--mixup', type=float, default=0.0, help='mixup alpha (0: off)')
    g.add_argument('--cutmix', type=float, default=0.0, help='cutmix alpha (0: off)')
    g.add_argument('--mixup-prob', type=float, default=1.0, help='probability of mixup or cutmix per batch')
    g.add_argument('--mixup-switch-prob', type=float, default=0.5, help='probability of cutmix when both are on')
    g.add_argument('--mixup-mode', default='batch', choices=('batch', 'pair', 'elem'), help='mixup mode')
    g.add_argument('--model-ema', action='store_true', help='keep an EMA of the weights (timm ModelEmaV3)')
    g.add_argument('--model-ema-decay', type=float, default=0.9998, help='EMA decay')
    g = p.add_argument_group('run')
    g.add_argument('--seed', type=int, default=42, help='random seed (default: 42)')
    g.add_argument('--deterministic', action='store_true', help='torch deterministic algorithms (exact resume)')
    g.add_argument('--output', default='runs', metavar='DIR', help='parent folder of runs (default: runs)')
    g.add_argument('--experiment', default=None, help='run folder name (default: MODEL-DATASET-TIME)')
    g.add_argument('--resume', default=None, metavar='DIR', help='continue the run in this folder')
    g.add_argument('--log-interval', type=int, default=50, help='progress-bar refresh interval in steps')
    g.add_argument('--val-interval', type=int, default=1, help='validate every N epochs (and after the last)')
    g.add_argument('--tensorboard', action='store_true', help='also log to TensorBoard (needs tensorboard)')
    g.add_argument('--profile-data', action='store_true', help='report the share of step time spent on data')


def add_validate_args(p: argparse.ArgumentParser) -> None:
    """Validation options."""
    add_data_args(p)
    g = p.add_argument_group('checkpoint')
    g.add_argument('--checkpoint', default=None, metavar='PATH',
                   help='a run folder, its last/ or best/ folder, or a weights file (.safetensors/.pth)')
    g.add_argument('--pretrained', action='store_true',
                   help='without --checkpoint: timm\'s pretrained weights of --model (may download)')
    g.add_argument('--use-ema', action='store_true', help='evaluate the EMA weights of the checkpoint')
    g.add_argument('--results-file', default=None, metavar='FILE.json',
                   help='where to write the result (default: beside the checkpoint, or ./validate.json)')


class ConfigArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose ``-c/--config FILE.yaml`` values become defaults that the command line overrides.

    With ``--resume DIR``, the run's saved ``DIR/config.yaml`` comes first, then ``-c``, then the command line.

    Works as a sub-command parser too (argparse hands a sub-parser its part of the command line).
    """

    def parse_known_args(self, args=None, namespace=None):
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        pre.add_argument('-c', '--config', default=None)
        pre.add_argument('--resume', default=None)
        known = pre.parse_known_args(args)[0]
        try:
            if known.resume and (Path(known.resume) / 'config.yaml').is_file():
                saved = load_config_file(str(Path(known.resume) / 'config.yaml'), self)
                self.set_defaults(**{k: v for k, v in saved.items() if k != 'resume'})
            if known.config:
                self.set_defaults(**load_config_file(known.config, self))
        except (ValueError, FileNotFoundError) as e:
            self.error(str(e))  # usage + 'banet COMMAND: error: ...', exit status 2
        return super().parse_known_args(args, namespace)


def read_yaml_mapping(path: str, what: str, expected: str) -> Dict[str, Any]:
    """The mapping in YAML file ``path``, or one clear error naming ``what`` the file is and what it should hold."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f'{what} {path} does not exist')
    try:
        values = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f'{what} {path} is not valid YAML: {e}') from e
    if not isinstance(values, dict):
        raise ValueError(f'{what} {path} must hold a mapping {expected}')
    return values


def load_config_file(path: str, parser: argparse.ArgumentParser) -> Dict[str, Any]:
    """Read a YAML mapping of option values and check every key against ``parser``'s options."""
    values = read_yaml_mapping(path, 'config file', 'of option: value')
    return check_config_keys(values, parser, f'config file {path}')


def check_config_keys(values: Dict[Any, Any], parser: argparse.ArgumentParser, where: str) -> Dict[str, Any]:
    """``values`` with ``-`` in keys turned to ``_``; a ValueError naming ``where`` if a key is no option."""
    known = {a.dest for a in parser._actions} - _NOT_CONFIG - {'help'}
    values = {str(k).replace('-', '_'): v for k, v in values.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f'{where}: unknown key(s) {unknown}; keys are option names such as '
                         f'batch_size or warmup_epochs (see --help)')
    return values


def resolved_config(args: argparse.Namespace) -> Dict[str, Any]:
    """The options of a parsed command as a plain dict (what is printed and saved with a run)."""
    return {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
