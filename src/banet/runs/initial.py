"""What a dense task's model starts from: classification weights for its backbone, the class count of its
categories."""
from typing import Any, Dict, Mapping, Optional

import torch

from ..errors import BanetError
from ..io import read_checkpoint
from .distributed import DistInfo

__all__ = ['class_count', 'backbone_weights', 'report_backbone']


def class_count(categories: Mapping[int, str], requested: Optional[int]) -> int:
    """``requested`` or the largest category id + 1 (class 0 is the background); BanetError if it is too small."""
    largest = max(categories, default=0)
    num_classes = requested or largest + 1
    if num_classes <= largest:
        raise BanetError(f'--num-classes {num_classes} is not above the largest category id {largest}')
    return num_classes


def backbone_weights(checkpoint: Optional[str], trust_pickle: bool = False) -> Optional[Dict[str, torch.Tensor]]:
    """The classification state dict ``checkpoint`` names, read by banet's one loader (None without one)."""
    if not checkpoint:
        return None
    return read_checkpoint(checkpoint, trust_pickle=trust_pickle).state_dict


def report_backbone(checkpoint: Optional[str], report: Any, info: DistInfo) -> None:
    """Print how the classification weights fitted the backbone (first process, only when some were given)."""
    if info.primary and report is not None:
        adapted = f'; input channels converted: {", ".join(report.adapted_keys)}' if report.adapted_keys else ''
        print(f'backbone initialised from {checkpoint}: {len(report.missing_keys)} missing, '
              f'{len(report.unexpected_keys)} unexpected key(s){adapted}', flush=True)
