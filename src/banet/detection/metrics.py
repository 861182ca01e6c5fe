"""COCO box and mask AP through pycocotools' ``COCOeval`` (Lin et al., Microsoft COCO, ECCV 2014)."""
import contextlib
import io
from typing import Any, Iterable, Optional, Sequence

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..errors import BanetError

__all__ = ['IOU_TYPES', 'METRIC_NAMES', 'coco_metrics']

IOU_TYPES = ('bbox', 'segm')
METRIC_NAMES = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')  # COCOeval.stats[0:6]


def _copy(coco_gt: COCO) -> COCO:
    """A COCO whose annotation dicts are copies: COCOeval rewrites the ground truth's segmentations (polygons to
    RLE with bytes counts) and adds keys in place, which would break a data set reading the same ``COCO`` later."""
    copy = COCO()
    copy.dataset = dict(coco_gt.dataset, annotations=[dict(a) for a in coco_gt.dataset.get('annotations', [])])
    copy.createIndex()
    return copy


def coco_metrics(coco_gt: Any, results: Sequence[dict], iou_type: str = 'bbox',
                 image_ids: Optional[Iterable[int]] = None) -> dict[str, float]:
    """``{iou_type}_AP``, ``_AP50``, ``_AP75``, ``_APs``, ``_APm``, ``_APl`` of COCO-format ``results``.

    ``coco_gt`` is a pycocotools ``COCO``; ``results`` are dicts with ``image_id``, ``category_id``, ``score``
    and ``bbox`` (XYWH) or ``segmentation`` (RLE). ``image_ids`` limits the evaluation to those images (default:
    all of ``coco_gt``). Crowd ground truth is matched but never counted, as COCO does; a size class without
    ground truth gives -1 (COCO's convention). No results at all give AP 0.
    """
    if iou_type not in IOU_TYPES:
        raise BanetError(f"iou_type must be one of {IOU_TYPES}, got '{iou_type}'")
    names = [f'{iou_type}_{name}' for name in METRIC_NAMES]
    if not results:
        return dict.fromkeys(names, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        evaluator = COCOeval(_copy(coco_gt), coco_gt.loadRes(list(results)), iou_type)
        if image_ids is not None:
            evaluator.params.imgIds = sorted(set(image_ids))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(names, evaluator.stats[:len(names)])}
