"""Mean IoU and pixel accuracy from a confusion matrix (``torch.bincount``), ignoring label 255."""
import math
from typing import Mapping, Optional, Sequence

import torch

from ..errors import BanetError

__all__ = ['metrics_from_confusion', 'named_iou', 'SegmentationMetric']


def metrics_from_confusion(confusion: torch.Tensor) -> dict[str, float | list[float]]:
    """``miou``, ``pixel_acc`` and per-class ``iou`` of a confusion matrix (rows: truth, columns: prediction).

    Classes absent from both truth and prediction have IoU NaN and are left out of the mean.
    """
    confusion = confusion.double()
    hits = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - hits
    iou = hits / union  # 0/0 -> NaN for classes never seen
    return {'miou': float(iou.nanmean()), 'pixel_acc': float(hits.sum() / confusion.sum()),
            'iou': iou.tolist()}


def named_iou(iou: Sequence[float], categories: Mapping[int, str]) -> dict[str, Optional[float]]:
    """Per-class IoU by class name (class 0 ``background``, ids without a category by number); NaN as None."""
    names = {0: 'background', **categories}
    return {names.get(c, str(c)): None if math.isnan(v) else v for c, v in enumerate(iou)}


class SegmentationMetric:
    """Accumulates a ``num_classes`` × ``num_classes`` confusion matrix over batches of label maps."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``prediction`` is labels (B×H×W) or logits (B×C×H×W), ``target`` labels (B×H×W)."""
        if prediction.dim() == target.dim() + 1:
            prediction = prediction.argmax(1)
        keep = target != self.ignore_index
        truth, pred = target[keep].long().cpu(), prediction[keep].long().cpu()
        if truth.numel() and (truth.min() < 0 or truth.max() >= self.num_classes):
            raise BanetError(f'target labels must be in [0, {self.num_classes}) or {self.ignore_index}, '
                             f'got {truth.min().item()}..{truth.max().item()}')
        counts = torch.bincount(truth * self.num_classes + pred, minlength=self.num_classes ** 2)
        self.confusion += counts.reshape(self.num_classes, self.num_classes)

    def compute(self) -> dict[str, float | list[float]]:
        """``miou``, ``pixel_acc`` and per-class ``iou`` of everything added so far."""
        return metrics_from_confusion(self.confusion)

    def reset(self) -> None:
        self.confusion.zero_()
