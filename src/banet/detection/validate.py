"""``validate_detector``: COCO box (and mask) AP of a detection checkpoint, on one process or sharded under torchrun."""
from typing import Any, Dict

from torch import nn

from ..dense.loader import build_loader, eval_shard
from ..dense.validate import validate_checkpoint
from ..runs.distributed import DistInfo
from ..runs.precision import Precision
from .checkpoint import TASK, detector_from
from .data import CocoDetectionDataset
from .evaluate import evaluate_detector
from .options import DetectValidateConfig

__all__ = ['validate_detector']


def _has_masks(model: nn.Module) -> bool:
    return hasattr(model, 'roi_heads') and model.roi_heads.has_mask()


def validate_detector(config: DetectValidateConfig) -> Dict[str, Any]:
    """COCO box (and mask) AP of a detection checkpoint on ``config.val_split``, written as JSON.

    Under torchrun every process scores a contiguous share of the images (each image once) and the predictions
    are gathered for one ``COCOeval``, so the numbers equal a one-process run's.
    """
    def score(model: nn.Module, dist: DistInfo, precision: Precision) -> Dict[str, Any]:
        dataset = CocoDetectionDataset(config.data_dir, config.val_split, masks=_has_masks(model), drop_crowd=False)
        loader = build_loader(eval_shard(dataset, dist), config.batch_size, train=False, num_workers=config.workers)
        return {'images': len(dataset), **evaluate_detector(model, loader, dataset.coco, device=dist.device,
                                                             autocast_dtype=precision.dtype, dist=dist)}

    return validate_checkpoint(config, TASK, detector_from, score)
