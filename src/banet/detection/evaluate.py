"""One evaluation pass of a torchvision detector, scored with COCO box (and mask) AP, on one or every process."""
from contextlib import nullcontext
from typing import Any, Iterable, Optional

import numpy as np
import torch
import torch.distributed
from pycocotools import mask as mask_utils
from torch import nn

from ..runs.distributed import DistInfo, broadcast_object
from .metrics import coco_metrics

__all__ = ['to_coco_results', 'evaluate_detector']

MASK_THRESHOLD = 0.5  # torchvision's Mask R-CNN masks are per-pixel probabilities


def to_coco_results(output: dict[str, torch.Tensor], image_id: int) -> tuple[list[dict], list[dict]]:
    """A detector's output for one image as COCO result dicts: (boxes, masks as RLE; empty without masks)."""
    boxes = output['boxes'].detach().float().cpu()
    boxes[:, 2:] -= boxes[:, :2]  # XYXY -> XYWH
    common = [dict(image_id=image_id, category_id=int(c), score=float(s))
              for c, s in zip(output['labels'].tolist(), output['scores'].tolist())]
    box_results = [dict(d, bbox=[round(v, 3) for v in b]) for d, b in zip(common, boxes.tolist())]
    if 'masks' not in output:
        return box_results, []
    binary = (output['masks'][:, 0] > MASK_THRESHOLD).cpu().numpy().astype(np.uint8)
    rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0)))
    mask_results = [dict(d, segmentation=dict(size=r['size'], counts=r['counts'].decode('ascii')))
                    for d, r in zip(common, rles)]
    return box_results, mask_results


def _gather(parts: tuple[list, list, list, bool], dist: Optional[DistInfo]) -> tuple[list, list, list, bool]:
    """Every process's (boxes, masks, image ids, has masks) joined in rank order (as is outside torchrun)."""
    if dist is None or not dist.distributed:
        return parts
    gathered = [None] * dist.world_size
    torch.distributed.all_gather_object(gathered, parts)
    return ([r for g in gathered for r in g[0]], [r for g in gathered for r in g[1]],
            [i for g in gathered for i in g[2]], any(g[3] for g in gathered))


@torch.no_grad()
def evaluate_detector(model: nn.Module, loader: Iterable, coco_gt: Any, *, device: str | torch.device = 'cpu',
                      autocast_dtype: Optional[torch.dtype] = None, dist: Optional[DistInfo] = None) -> dict[str, float]:
    """COCO ``bbox_*`` (and, for Mask R-CNN, ``segm_*``) metrics of ``model`` on ``loader``'s images.

    ``loader`` yields ``(images, targets)`` (e.g. :func:`~banet.dense.loader.build_loader` over a
    :class:`~banet.detection.data.CocoDetectionDataset` without resizing, so predictions are in the annotations'
    coordinates); ``coco_gt`` is the pycocotools ``COCO`` of the same split (``dataset.coco``). Only the images
    seen are scored. Under torchrun (``dist``), every process runs its own share of the images (each image on one
    process: :func:`~banet.dense.loader.eval_shard`), the predictions are gathered for one ``COCOeval`` on the
    first process, and every process returns its numbers.
    """
    device = torch.device(device)
    model.eval()
    boxes, masks, image_ids, has_masks = [], [], [], False
    amp = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    for images, targets in loader:
        with amp:
            outputs = model([image.to(device) for image in images])
        for target, output in zip(targets, outputs):
            image_id = int(target['image_id'])
            image_ids.append(image_id)
            has_masks |= 'masks' in output
            box_results, mask_results = to_coco_results(output, image_id)
            boxes += box_results
            masks += mask_results
    boxes, masks, image_ids, has_masks = _gather((boxes, masks, image_ids, has_masks), dist)
    metrics = None
    if dist is None or dist.primary:
        metrics = coco_metrics(coco_gt, boxes, 'bbox', image_ids)
        if has_masks:
            metrics.update(coco_metrics(coco_gt, masks, 'segm', image_ids))
    return metrics if dist is None else broadcast_object(metrics, dist)
