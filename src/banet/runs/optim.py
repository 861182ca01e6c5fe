"""The optimiser and the schedule of a run, from timm's factories and the run's :class:`OptimOptions` fields."""
from typing import Any, Tuple

from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2, scheduler_kwargs
from torch import nn

__all__ = ['build_optimizer', 'build_scheduler']


def build_optimizer(cfg: Any, model: nn.Module) -> Any:
    """timm's optimiser ``cfg.opt`` (lr, weight decay off norms and biases, momentum, eps, betas)."""
    return create_optimizer_v2(
        model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum,
        **({'eps': cfg.opt_eps} if cfg.opt_eps is not None else {}),
        **({'betas': tuple(cfg.opt_betas)} if cfg.opt_betas else {}))


def build_scheduler(cfg: Any, optimizer: Any, updates_per_epoch: int) -> Tuple[Any, int]:
    """timm's scheduler ``cfg.sched`` and the epoch count (``scheduler_kwargs`` reads the schedule options)."""
    return create_scheduler_v2(optimizer, **scheduler_kwargs(cfg), updates_per_epoch=updates_per_epoch)
