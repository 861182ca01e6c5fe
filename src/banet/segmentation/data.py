"""Semantic masks (category id per pixel, 255 on crowd) from a COCO-layout split, and their transforms.

The transforms are torchvision's segmentation reference recipe on ``transforms.v2``, applied jointly to the image
and its ``tv_tensors.Mask`` (masks resize with nearest neighbours).
"""
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..dense.coco import load_coco, read_sample
from ..dense.errors import DataError

__all__ = ['IGNORE_INDEX', 'semantic_mask', 'CocoSegmentationDataset', 'train_transforms', 'eval_transforms']

IGNORE_INDEX = 255  # crowd regions and crop padding


def semantic_mask(coco: Any, image_id: int) -> np.ndarray:
    """H×W uint8 class map of one image: category id per pixel, 0 background, 255 (ignore) on crowd regions.

    Objects are painted in annotation order (a later one covers an earlier one), crowd regions last.
    """
    info = coco.imgs[image_id]
    out = np.zeros((info['height'], info['width']), dtype=np.uint8)
    anns = sorted(coco.imgToAnns[image_id], key=lambda a: bool(a.get('iscrowd', 0)))
    for ann in anns:
        if not 0 < ann['category_id'] < IGNORE_INDEX:
            raise DataError(f"category id {ann['category_id']} of annotation {ann['id']} does not fit a uint8 "
                            f'class map (1..{IGNORE_INDEX - 1})')
        out[coco.annToMask(ann) > 0] = IGNORE_INDEX if ann.get('iscrowd', 0) else ann['category_id']
    return out


class CocoSegmentationDataset(Dataset):
    """``(normalised float image C×H×W, int64 label map H×W)`` of a COCO-layout split.

    Labels are COCO category ids (so ``num_classes`` = largest id + 1), 0 background and 255 (ignored by
    :class:`~banet.segmentation.SegmentationMetric`) on crowd regions. ``transforms`` runs on the
    ``(tv_tensors.Image, tv_tensors.Mask)`` pair (masks resize with nearest neighbours); then the image is scaled
    to [0, 1] and normalised with ``mean``/``std`` (torchvision's segmenters do not normalise themselves).
    """

    def __init__(self, root: str | Path, split: str, transforms: Optional[Callable[[Any, Any], Any]] = None, *,
                 mean: Sequence[float] = IMAGENET_DEFAULT_MEAN, std: Sequence[float] = IMAGENET_DEFAULT_STD) -> None:
        self.base = load_coco(root, split)
        self.coco = self.base.coco
        self.transforms = transforms
        self._finish = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, _ = read_sample(self.base, self.base, index)
        image = F.to_image(image)
        mask = tv_tensors.Mask(torch.from_numpy(semantic_mask(self.coco, self.base.ids[index])))
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return self._finish(image), mask.as_subclass(torch.Tensor).long()


def train_transforms(base_size: int, crop_size: int, hflip: float = 0.5) -> v2.Transform:
    """Shorter side resized to a random 0.5-2 × ``base_size``, flipped with probability ``hflip``, cropped to
    ``crop_size`` × ``crop_size`` at random (padded where smaller: image 0, mask 255), so batches stack."""
    return v2.Compose([
        v2.RandomResize(int(0.5 * base_size), int(2.0 * base_size)),
        v2.RandomHorizontalFlip(hflip),
        v2.RandomCrop(crop_size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}),
    ])


def eval_transforms(base_size: int) -> v2.Transform:
    """Shorter side resized to ``base_size`` (aspect kept; images are evaluated one at a time)."""
    return v2.Resize(base_size)
