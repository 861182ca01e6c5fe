"""One evaluation pass of a segmenter: mean IoU and pixel accuracy, on one or every process."""
from typing import Iterable, Optional

import torch
import torch.distributed
from torch import nn

from ..runs.distributed import DistInfo
from .metrics import SegmentationMetric

__all__ = ['evaluate_segmenter']


@torch.no_grad()
def evaluate_segmenter(model: nn.Module, loader: Iterable, num_classes: int, *,
                       device: str | torch.device = 'cpu', ignore_index: int = 255,
                       dist: Optional[DistInfo] = None) -> dict[str, float | list[float]]:
    """``miou``, ``pixel_acc`` and per-class ``iou`` of ``model(images)['out']`` on ``loader``'s (images, masks).

    Under torchrun (``dist``), every process runs its own share of the images
    (:func:`~banet.dense.loader.eval_shard`) and the confusion matrices are summed over the processes
    (``all_reduce``), so every process returns the numbers of the whole set.
    """
    model.eval()
    metric = SegmentationMetric(num_classes, ignore_index)
    for images, masks in loader:
        metric.update(model(images.to(device))['out'], masks)
    if dist is not None and dist.distributed:
        confusion = metric.confusion.to(dist.device)  # nccl reduces device tensors only
        torch.distributed.all_reduce(confusion)
        metric.confusion = confusion.cpu()
    return metric.compute()
