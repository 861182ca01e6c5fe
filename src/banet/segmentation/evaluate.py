"""One evaluation pass of a segmenter: mean IoU and pixel accuracy."""
from typing import Iterable

import torch
from torch import nn

from .metrics import SegmentationMetric

__all__ = ['evaluate_segmenter']


@torch.no_grad()
def evaluate_segmenter(model: nn.Module, loader: Iterable, num_classes: int, *,
                       device: str | torch.device = 'cpu', ignore_index: int = 255) -> dict[str, float | list[float]]:
    """``miou``, ``pixel_acc`` and per-class ``iou`` of ``model(images)['out']`` on ``loader``'s (images, masks)."""
    model.eval()
    metric = SegmentationMetric(num_classes, ignore_index)
    for images, masks in loader:
        metric.update(model(images.to(device))['out'], masks)
    return metric.compute()
