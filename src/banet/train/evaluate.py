"""One evaluation pass of a classifier: top-1/top-5, loss and images/s, summed over every process."""
import time
from contextlib import nullcontext
from typing import Any, Callable, Dict, Iterable

import torch
import torch.distributed as dist
from timm.utils import accuracy
from torch import nn

from ..errors import BanetError
from ..runs.progress import bar

__all__ = ['evaluate']


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
    for x, y in bar(loader, 'eval', progress):
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
