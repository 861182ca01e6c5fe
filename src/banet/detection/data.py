"""COCO-layout detection data through torchvision's ``CocoDetection`` and ``transforms.v2``.

The files are read and checked by :mod:`banet.dense.coco` (Lin et al., *Microsoft COCO: Common Objects in
Context*, ECCV 2014).
"""
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.datasets import wrap_dataset_for_transforms_v2
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..dense.coco import load_coco, read_sample

__all__ = ['CocoDetectionDataset', 'train_transforms']

Transform = Callable[[Any, dict], tuple[Any, dict]]


def _has_objects(coco: Any, image_id: int) -> bool:
    return any(not a.get('iscrowd', 0) and a['bbox'][2] >= 1 and a['bbox'][3] >= 1 for a in coco.imgToAnns[image_id])


def _labels_and_crowd(inputs: tuple[Any, dict]) -> tuple[torch.Tensor, torch.Tensor]:
    return inputs[1]['labels'], inputs[1]['iscrowd']


def _empty_target(target: dict, size: tuple[int, int], masks: bool) -> dict:
    """The wrapper's target of an image without annotations (image_id only), completed with empty tensors."""
    target = dict(target, boxes=tv_tensors.BoundingBoxes(torch.zeros(0, 4), format='XYXY', canvas_size=size),
                  labels=torch.zeros(0, dtype=torch.int64), iscrowd=[])
    if masks:
        target['masks'] = tv_tensors.Mask(torch.zeros(0, *size, dtype=torch.uint8))
    return target


class CocoDetectionDataset(Dataset):
    """A COCO-layout split as torchvision detectors take it: ``(float image CxHxW in [0, 1], target)``.

    The target has ``boxes`` (XYXY ``BoundingBoxes``), ``labels`` (COCO category ids), ``iscrowd``, ``image_id``
    and, with ``masks=True``, instance ``masks`` (N×H×W uint8). ``transforms`` (e.g. :func:`train_transforms`)
    runs on the tv_tensors, so boxes and masks follow every flip or resize. Then, always: boxes are clipped to the
    image (``ClampBoundingBoxes``, as torchvision's COCO reference clips them), boxes under 1 px wide or high
    (also those wholly outside the image) are dropped (``SanitizeBoundingBoxes``) and, with ``drop_crowd``
    (default), crowd objects too; pass
    ``drop_crowd=False`` to keep them, flagged in ``iscrowd`` (COCO evaluation reads them from the annotations
    file). Images without annotations yield empty targets; ``skip_empty=True`` leaves out those without a
    non-crowd object (for training). An unreadable image raises DataError naming the file.
    """

    def __init__(self, root: str | Path, split: str, transforms: Optional[Transform] = None, *,
                 masks: bool = False, skip_empty: bool = False, drop_crowd: bool = True) -> None:
        self.base = load_coco(root, split)
        keys = ('image_id', 'boxes', 'labels', 'iscrowd') + (('masks',) if masks else ())
        self._wrapped = wrap_dataset_for_transforms_v2(self.base, target_keys=keys)
        self.coco = self.base.coco
        self.masks, self.drop_crowd = masks, drop_crowd
        self.indices = [i for i, image_id in enumerate(self.base.ids)
                        if not skip_empty or _has_objects(self.coco, image_id)]
        self.transforms = transforms
        self._finish = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.ClampBoundingBoxes(),
                                   v2.SanitizeBoundingBoxes(labels_getter=_labels_and_crowd)])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image, target = read_sample(self.base, self._wrapped, self.indices[index])
        image = F.to_image(image)
        if 'boxes' not in target:
            target = _empty_target(target, tuple(image.shape[-2:]), self.masks)
        target['iscrowd'] = torch.as_tensor(target['iscrowd'], dtype=torch.int64)
        target['boxes'] = target['boxes'].to(torch.float32)  # COCO files may hold integer boxes
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        image, target = self._finish(image, target)
        if self.drop_crowd:
            keep = target['iscrowd'] == 0
            for key in ('boxes', 'labels', 'iscrowd', 'masks'):
                if key in target:
                    target[key] = target[key][keep]
        return image, target


def train_transforms(hflip: float = 0.5, scale: Optional[tuple[float, float]] = None) -> v2.Transform:
    """Detection augmentation on tv_tensors: horizontal flip and optional scale jitter in place (zoom ``scale``)."""
    steps: list[v2.Transform] = [v2.RandomHorizontalFlip(hflip)]
    if scale is not None:
        steps.append(v2.RandomAffine(degrees=0.0, scale=scale))
    return v2.Compose(steps)
