"""The training loss of torchvision's segmentation reference: cross-entropy on ``out`` + 0.5 × on ``aux``."""
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from .data import IGNORE_INDEX

__all__ = ['AUX_WEIGHT', 'SegmentationLoss']

AUX_WEIGHT = 0.5


class SegmentationLoss(nn.Module):
    """Pixel-wise cross-entropy of a segmenter's ``{'out': logits, 'aux': logits}`` against a label map.

    Pixels labelled ``ignore_index`` (crowds, crop padding) do not count; the auxiliary head's loss, when the
    model has one, is added at ``aux_weight``.
    """

    def __init__(self, aux_weight: float = AUX_WEIGHT, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.aux_weight, self.ignore_index = aux_weight, ignore_index

    def forward(self, outputs: Mapping[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(outputs['out'], target, ignore_index=self.ignore_index)
        if 'aux' in outputs:
            loss = loss + self.aux_weight * F.cross_entropy(outputs['aux'], target, ignore_index=self.ignore_index)
        return loss
