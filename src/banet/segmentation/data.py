"""Semantic masks (category id per pixel, 255 on crowd) from a COCO-layout split."""
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..detection.data import load_coco, read_sample, semantic_mask

__all__ = ['CocoSegmentationDataset']


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
