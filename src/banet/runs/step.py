"""One training epoch of any task: autocast, the float16 loss scaler, gradient accumulation and clipping, EMA,
the per-update schedule and the progress bar; the task gives only the loss of a batch."""
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

import torch
import torch.distributed as dist
from timm.utils import dispatch_clip_grad
from torch import nn

from ..errors import BanetError
from .progress import bar

__all__ = ['StepConfig', 'NonFiniteLossError', 'BatchLoss', 'train_one_epoch']

#: what a task's loss of a batch returns: the loss (or a dict of loss terms, summed) and the batch's image count
BatchLoss = Tuple[Union[torch.Tensor, Mapping[str, torch.Tensor]], int]


class NonFiniteLossError(BanetError, RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class StepConfig:
    """How a training step runs."""
    device: torch.device
    autocast: Callable[[], Any] = nullcontext
    loss_scaler: Optional[Any] = None  # timm NativeScaler for float16
    clip_grad: Optional[float] = None
    clip_mode: str = 'norm'
    accum_steps: int = 1
    log_interval: int = 50
    progress: bool = True
    profile_data: bool = False


def train_one_epoch(
        epoch: int,
        model: nn.Module,
        loader: Iterable,
        loss_of: Callable[[nn.Module, Any], BatchLoss],
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        cfg: StepConfig,
        ema: Optional[nn.Module] = None,
        num_updates: int = 0,
) -> Dict[str, float]:
    """Train epoch number ``epoch`` (1-based) with ``loss_of(model, batch)``; raises NonFiniteLossError naming the
    step (and every loss term) if the loss is NaN/Inf, BanetError if the loader yields no batch.

    Returns the mean loss (``train_loss``; ``train_TERM`` per term of a dict loss), images/s, the first step's
    time, the data share of the step time, the last lr and the update count.
    """
    model.train()
    total_loss = torch.zeros((), device=cfg.device)
    terms_sum: Dict[str, torch.Tensor] = {}
    seen, timed, steps, data_time, first_step = 0, 0, 0, 0.0, math.nan
    start = tick = time.perf_counter()
    batches = bar(loader, f'train {epoch}', cfg.progress)
    optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(batches):
        if cfg.profile_data:
            data_time += time.perf_counter() - tick
        last_micro = (i + 1) % cfg.accum_steps == 0
        sync = nullcontext() if last_micro or not hasattr(model, 'no_sync') else model.no_sync()
        with sync:
            with cfg.autocast():
                out, n = loss_of(model, batch)
            terms = dict(out) if isinstance(out, Mapping) else {}
            loss = sum(terms.values()) if terms else out
            if not torch.isfinite(loss):
                shown = '; ' + ', '.join(f'{k}={v.item():.4g}' for k, v in terms.items()) if terms else ''
                raise NonFiniteLossError(
                    f'the loss is {loss.item()} at epoch {epoch}, step {i // cfg.accum_steps + 1} of '
                    f'{len(loader) // cfg.accum_steps} (update {num_updates + 1}{shown}); stopped, the checkpoints '
                    'of the last finished epoch are kept (lower the learning rate or set --clip-grad)')
            scaled = loss / cfg.accum_steps
            if cfg.loss_scaler is not None:
                cfg.loss_scaler(scaled, optimizer, clip_grad=cfg.clip_grad, clip_mode=cfg.clip_mode,
                                parameters=model.parameters(), need_update=last_micro)
            else:
                scaled.backward()
                if last_micro:
                    if cfg.clip_grad is not None:
                        dispatch_clip_grad(model.parameters(), cfg.clip_grad, mode=cfg.clip_mode)
                    optimizer.step()
        if last_micro:
            optimizer.zero_grad(set_to_none=True)
            num_updates += 1
            if ema is not None:
                ema.update(model, step=num_updates)
            scheduler.step_update(num_updates=num_updates)
        total_loss += loss.detach().float() * n
        for k, v in terms.items():
            terms_sum[k] = terms_sum.get(k, 0) + v.detach().float() * n
        seen += n
        steps += 1
        if steps == 1 and len(loader) > 1:  # the first step pays for compilation and warm-up: timed apart
            first_step = time.perf_counter() - start
            start = time.perf_counter()
        else:
            timed += n
        if cfg.progress and (i % cfg.log_interval == 0 or i + 1 == len(loader)):
            rate = timed / max(time.perf_counter() - start, 1e-9)
            batches.set_postfix(loss=f'{loss.item():.4f}', lr=f'{optimizer.param_groups[0]["lr"]:.2e}',
                                img_s=f'{rate:.0f}')
        tick = time.perf_counter()
    batches.close()
    if steps == 0:
        raise BanetError('the training loader yielded no batch (is the data set smaller than one batch?)')
    elapsed = time.perf_counter() - start
    names = list(terms_sum)
    stats = torch.tensor([0.0, seen, timed] + [0.0] * len(names), dtype=torch.float64, device=cfg.device)
    stats[0] = total_loss
    for j, k in enumerate(names):
        stats[3 + j] = terms_sum[k]
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(stats)
    return {
        'train_loss': (stats[0] / stats[1]).item(),
        **{f'train_{k}': (stats[3 + j] / stats[1]).item() for j, k in enumerate(names)},
        'train_img_s': stats[2].item() / elapsed,
        'first_step_s': first_step,
        'data_share': data_time / elapsed if cfg.profile_data else math.nan,
        'lr': optimizer.param_groups[0]['lr'],
        'num_updates': num_updates,
    }
