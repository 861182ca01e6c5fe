"""``validate_segmenter``: mean IoU, pixel accuracy and per-class IoU of a segmentation checkpoint, sharded under
torchrun."""
from typing import Any, Dict

from torch import nn
from tqdm import tqdm

from ..dense.loader import build_loader, eval_shard
from ..dense.validate import validate_checkpoint
from ..runs.distributed import DistInfo
from ..runs.precision import Precision
from .checkpoint import TASK, segmenter_from
from .data import CocoSegmentationDataset, eval_transforms
from .evaluate import evaluate_segmenter
from .metrics import named_iou
from .options import SegmentValidateConfig

__all__ = ['validate_segmenter']


def validate_segmenter(config: SegmentValidateConfig) -> Dict[str, Any]:
    """Mean IoU, pixel accuracy and per-class IoU of a segmentation checkpoint on ``config.val_split``, written as
    JSON (classes absent from the split and never predicted have IoU ``null``, left out of the mean).

    Under torchrun every process scores a share of the images (each image once) and the confusion matrices are
    summed, so the numbers equal a one-process run's.
    """
    def score(model: nn.Module, dist: DistInfo, precision: Precision) -> Dict[str, Any]:
        prepare = model.input_config
        dataset = CocoSegmentationDataset(config.data_dir, config.val_split, eval_transforms(prepare['base_size']),
                                          mean=prepare['mean'], std=prepare['std'])
        loader = build_loader(eval_shard(dataset, dist), 1, train=False, num_workers=config.workers, collate_fn=None)
        shown = tqdm(loader, desc='eval', disable=not (config.progress and dist.primary), leave=False, unit='img')
        with precision.autocast(dist.device)():
            metrics = evaluate_segmenter(model, shown, model.num_classes, device=dist.device, dist=dist)
        return {'images': len(dataset),
                'miou': metrics['miou'], 'pixel_acc': metrics['pixel_acc'],
                'iou': named_iou(metrics['iou'], model.categories)}

    return validate_checkpoint(config, TASK, segmenter_from, score)
