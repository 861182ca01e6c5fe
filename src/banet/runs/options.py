"""The options every trainer shares, as dataclass mixins: this machine, the run folder, optimiser and schedule.

A task's config class mixes them in beside its own model and data options and may redeclare a field to change its
default (detection's lr, classification's seed). Field metadata (:func:`banet.config.option`) gives each option its
command line, YAML key and kind.
"""
import os
from dataclasses import dataclass
from typing import List, Optional

from ..config import AUTO, Switch, option
from ..errors import BanetError

__all__ = ['COMPILE_MODES', 'Options', 'MachineOptions', 'RunOptions', 'OptimOptions', 'default_workers',
           'positive']

COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
PREC, MACHINE, RUN, OPT = 'precision and compilation', 'this machine', 'run', 'optimiser and schedule'


def default_workers() -> int:
    """Loader processes: 4, but never more than the CPUs this process may use."""
    return min(4, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1)


def positive(config: object, *names: str) -> None:
    """A BanetError naming the first of ``names`` whose value is below 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise BanetError(f'--{name.replace("_", "-")} must be at least 1, got {getattr(config, name)}')


class Options:
    """The root of the option mixins: ``check()`` runs every mixin's value checks (each calls ``super()``)."""

    def check(self) -> None:
        """Value checks that need no files (a BanetError names the option)."""


@dataclass
class MachineOptions(Options):
    """Device, threads, precision, memory format, compilation, progress bars, pickle trust."""
    amp: Switch = option(AUTO, 'mixed precision (autocast with --amp-dtype); auto: where the hardware runs it '
                         'natively (bfloat16 on CPUs with AVX512-BF16/AMX, CUDA), else float32', group=PREC)
    amp_dtype: str = option('bfloat16', 'autocast dtype (float16 uses a loss scaler)',
                            choices=('bfloat16', 'float16'), group=PREC)
    channels_last: Switch = option(AUTO, 'channels_last memory format; auto: only with autocast', 'machine',
                                   group=PREC)
    compile: bool = option(False, 'torch.compile the model (compile time is reported apart)', 'machine', group=PREC)
    compile_mode: str = option('default', 'torch.compile mode', 'machine', choices=COMPILE_MODES, group=PREC)
    compile_backend: str = option('inductor', 'torch.compile backend (eager and aot_eager are for tests)',
                                  'machine', group=PREC)
    device: Optional[str] = option(None, 'cpu, cuda, cuda:1 ... (default: cuda when available)', 'machine',
                                   group=MACHINE)
    threads: Optional[int] = option(None, 'torch CPU threads (default: torch\'s choice)', 'machine', group=MACHINE)
    progress: bool = option(True, 'progress bars', 'machine', group=MACHINE)
    trust_pickle: bool = option(False, 'allow pickle checkpoints with Python objects (only files you trust)',
                                'machine', group=MACHINE)

    def check(self) -> None:
        super().check()
        if self.amp not in (True, False, AUTO) or self.channels_last not in (True, False, AUTO):
            raise BanetError('--amp and --channels-last take auto, true or false')


@dataclass
class RunOptions(Options):
    """The run folder (name, parent, resume), seed, evaluation interval and logging."""
    seed: int = option(42, 'random seed', 'run', group=RUN)
    deterministic: bool = option(False, 'torch deterministic algorithms', group=RUN)
    output: str = option('runs', 'parent folder of runs', 'run', metavar='DIR', group=RUN)
    experiment: Optional[str] = option(None, 'run folder name (default: the task\'s names and the time)', 'run',
                                       group=RUN)
    resume: Optional[str] = option(
        None, 'continue the run in this folder from its last complete checkpoint (its config.yaml comes first); '
              'auto: continue OUTPUT/EXPERIMENT when it holds one, else start it (for torchrun --max-restarts)',
        'run', metavar='DIR|auto', group=RUN)
    val_interval: int = option(1, 'evaluate every N epochs (and after the last)', group=RUN)
    log_interval: int = option(50, 'progress-bar refresh interval in steps', 'machine', group=RUN)
    tensorboard: bool = option(False, 'also log to TensorBoard (needs tensorboard)', 'machine', group=RUN)

    def check(self) -> None:
        super().check()
        positive(self, 'val_interval', 'log_interval')
        if self.resume == AUTO and not self.experiment:
            raise BanetError('--resume auto needs a fixed --experiment NAME: the run folder that every restart '
                             'continues')


@dataclass
class OptimOptions(Options):
    """timm's optimiser and scheduler options, clipping, accumulation and the EMA of the weights."""
    opt: str = option('sgd', 'timm optimiser name: sgd (nesterov), momentum, adamw, ...', group=OPT)
    opt_eps: Optional[float] = option(None, 'optimiser epsilon', group=OPT)
    opt_betas: Optional[List[float]] = option(None, 'Adam betas', group=OPT)
    momentum: float = option(0.9, 'SGD momentum', group=OPT)
    weight_decay: float = option(5e-4, 'weight decay (not applied to norms and biases)', group=OPT)
    clip_grad: Optional[float] = option(None, 'clip gradients at this norm/value', group=OPT)
    clip_mode: str = option('norm', 'gradient clipping mode', choices=('norm', 'value', 'agc'), group=OPT)
    grad_accum_steps: int = option(1, 'micro-batches per optimiser step', group=OPT)
    lr: float = option(0.1, 'peak learning rate', group=OPT)
    epochs: int = option(10, 'epochs to train', group=OPT)
    sched: str = option('cosine', 'timm scheduler: cosine, step, multistep, plateau, ...', group=OPT)
    warmup_epochs: float = option(0.0, 'linear warmup epochs', group=OPT)
    warmup_lr: float = option(1e-5, 'learning rate at the start of the warmup', group=OPT)
    model_ema: bool = option(False, 'keep an EMA of the weights (timm ModelEmaV3), evaluated beside them',
                             group=OPT)
    model_ema_decay: float = option(0.9998, 'EMA decay', group=OPT)

    def check(self) -> None:
        super().check()
        positive(self, 'epochs', 'grad_accum_steps')
        if self.lr <= 0:
            raise BanetError(f'--lr must be above 0, got {self.lr}')
        for name in ('warmup_epochs', 'warmup_lr', 'weight_decay'):
            if getattr(self, name) < 0:
                raise BanetError(f'--{name.replace("_", "-")} must be >= 0, got {getattr(self, name)}')
