"""One training epoch of a torchvision detector (the model returns its loss dict in train mode)."""
import logging
import math
from collections import defaultdict
from contextlib import nullcontext
from typing import Any, Iterable, Optional

import torch
from torch import nn

from ..errors import BanetError
from ..train.engine import NonFiniteLossError

__all__ = ['train_one_epoch']

_logger = logging.getLogger(__name__)


def _to(target: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in target.items()}


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: Iterable, *,
                    device: str | torch.device = 'cpu', autocast_dtype: Optional[torch.dtype] = None,
                    scaler: Optional[torch.amp.GradScaler] = None, grad_clip: Optional[float] = None,
                    scheduler: Optional[Any] = None, max_iters: Optional[int] = None,
                    log_every: int = 0) -> dict[str, float]:
    """Train on ``loader``'s ``(images, targets)`` batches; return the mean of each loss and of their sum (``loss``).

    The optimised loss is the sum of the model's loss dict, computed under ``torch.autocast`` when
    ``autocast_dtype`` is set (float16 wants a ``scaler``). ``grad_clip`` clips the gradients' total norm;
    ``scheduler`` (if any) steps after every iteration; ``max_iters`` stops early. A NaN or infinite loss raises
    ``NonFiniteLossError`` naming the iteration and every loss term.
    """
    device = torch.device(device)
    model.train()
    sums: dict[str, float] = defaultdict(float)
    amp = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    steps = 0
    for images, targets in loader:
        images = [image.to(device) for image in images]
        targets = [_to(t, device) for t in targets]
        with amp:
            losses = model(images, targets)
        loss = sum(losses.values())
        terms = {k: v.item() for k, v in losses.items()}
        if not math.isfinite(loss.item()):
            raise NonFiniteLossError(
                f'detection loss is {loss.item()} at iteration {steps + 1} ('
                + ', '.join(f'{k}={v:.4g}' for k, v in terms.items())
                + '); lower the learning rate or set grad_clip')
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        steps += 1
        for k, v in terms.items():
            sums[k] += v
        sums['loss'] += loss.item()
        if log_every and steps % log_every == 0:
            _logger.info('iteration %d: loss %.4f (%s)', steps, loss.item(),
                         ', '.join(f'{k} {v:.4f}' for k, v in terms.items()))
        if max_iters is not None and steps >= max_iters:
            break
    if steps == 0:
        raise BanetError('the training loader yielded no batch (is the data set smaller than one batch with '
                         'drop_last=True?)')
    return {k: v / steps for k, v in sums.items()}
