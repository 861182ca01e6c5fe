"""One evaluation pass of a torchvision detector, scored with COCO box (and mask) AP."""
from contextlib import nullcontext
from typing import Any, Iterable, Optional

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import nn

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


@torch.no_grad()
def evaluate_detector(model: nn.Module, loader: Iterable, coco_gt: Any, *, device: str | torch.device = 'cpu',
                      autocast_dtype: Optional[torch.dtype] = None) -> dict[str, float]:
    """COCO ``bbox_*`` (and, for Mask R-CNN, ``segm_*``) metrics of ``model`` on ``loader``'s images.

    ``loader`` yields ``(images, targets)`` (e.g. :func:`~banet.detection.data.build_loader` over a
    :class:`~banet.detection.data.CocoDetectionDataset` without resizing, so predictions are in the annotations'
    coordinates); ``coco_gt`` is the pycocotools ``COCO`` of the same split (``dataset.coco``). Only the images
    seen are scored.
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
    metrics = coco_metrics(coco_gt, boxes, 'bbox', image_ids)
    if has_masks:
        metrics.update(coco_metrics(coco_gt, masks, 'segm', image_ids))
    return metrics
