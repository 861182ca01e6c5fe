"""One training epoch and one evaluation pass."""
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional

import torch
import torch.distributed as dist
from timm.utils import accuracy, dispatch_clip_grad
from torch import nn
from tqdm import tqdm

from ..errors import BanetError

__all__ = ['StepConfig', 'NonFiniteLossError', 'train_one_epoch', 'evaluate']


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
    channels_last: bool = False
    mixup: Optional[Callable] = None
    log_interval: int = 50
    progress: bool = True
    profile_data: bool = False


def _bar(loader: Iterable, desc: str, enabled: bool):
    return tqdm(loader, desc=desc, total=len(loader), disable=not enabled, dynamic_ncols=True, leave=False,
                unit='it')


def train_one_epoch(
        epoch: int,
        model: nn.Module,
        loader: Iterable,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        cfg: StepConfig,
        ema: Optional[nn.Module] = None,
        num_updates: int = 0,
) -> Dict[str, float]:
    """Train epoch number ``epoch`` (1-based); raises NonFiniteLossError naming the step if the loss is NaN/Inf.

    Returns mean loss, images/s, data share of the step time, last lr, and the update count.
    """
    model.train()
    total_loss = torch.zeros((), device=cfg.device)
    seen, timed, steps, data_time, first_step = 0, 0, 0, 0.0, math.nan
    start = tick = time.perf_counter()
    bar = _bar(loader, f'train {epoch}', cfg.progress)
    optimizer.zero_grad(set_to_none=True)
    for i, (x, y) in enumerate(bar):
        if cfg.profile_data:
            data_time += time.perf_counter() - tick
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if cfg.mixup is not None:
            x, y = cfg.mixup(x, y)
        last_micro = (i + 1) % cfg.accum_steps == 0
        sync = nullcontext() if last_micro or not hasattr(model, 'no_sync') else model.no_sync()
        with sync:
            with cfg.autocast():
                loss = criterion(model(x), y)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f'the loss is {loss.item()} at epoch {epoch}, step {i // cfg.accum_steps + 1} of '
                    f'{len(loader) // cfg.accum_steps} (update {num_updates + 1}); stopped, the checkpoints of '
                    'the last finished epoch are kept')
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
        total_loss += loss.detach() * x.shape[0]
        seen += x.shape[0]
        steps += 1
        if steps == 1 and len(loader) > 1:  # the first step pays for compilation and warm-up: timed apart
            first_step = time.perf_counter() - start
            start = time.perf_counter()
        else:
            timed += x.shape[0]
        if cfg.progress and (i % cfg.log_interval == 0 or i + 1 == len(loader)):
            rate = timed / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(loss=f'{loss.item():.4f}', lr=f'{optimizer.param_groups[0]["lr"]:.2e}',
                            img_s=f'{rate:.0f}')
        tick = time.perf_counter()
    bar.close()
    elapsed = time.perf_counter() - start
    stats = torch.tensor([0.0, seen, timed], dtype=torch.float64, device=cfg.device)
    stats[0] = total_loss
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(stats)
    return {
        'train_loss': (stats[0] / stats[1]).item(),
        'train_img_s': stats[2].item() / elapsed,
        'first_step_s': first_step,
        'data_share': data_time / elapsed if cfg.profile_data else math.nan,
        'lr': optimizer.param_groups[0]['lr'],
        'num_updates': num_updates,
    }


@torch.no_grad()
def evaluate(
        model: nn.Module,
        loader: Iterable,
        device: torch.device,
        autocast: Callable[[], Any] = nullcontext,
        channels_last: bool = False,
        progress: bool = True,
) -> Dict[str, float]:
    """Top-1/top-5 accuracy (%), mean cross-entropy and images/s, summed over all processes."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, count
    criterion = nn.CrossEntropyLoss(reduction='sum')
    start = time.perf_counter()
    for x, y in _bar(loader, 'eval', progress):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            out = model(x)
        out = out.float()
        top1, top5 = accuracy(out, y, topk=(1, min(5, out.shape[1])))
        n = x.shape[0]
        sums += torch.stack([criterion(out, y).double(), top1.double() * n / 100, top5.double() * n / 100,
                             torch.tensor(n, dtype=torch.float64, device=device)])
    elapsed = time.perf_counter() - start
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(sums)
    count = sums[3].item()
    if count == 0:
        raise BanetError('the evaluation set is empty')
    return {'loss': sums[0].item() / count, 'top1': 100 * sums[1].item() / count,
            'top5': 100 * sums[2].item() / count, 'img_s': count / elapsed, 'count': int(count)}
