"""Segmentations of image files, drawn as PNGs: each class's pixels tinted in its colour over the image."""
from pathlib import Path
from typing import Any, Dict, List, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import draw_segmentation_masks

from ..dense.predict import draw_files
from .data import eval_transforms

__all__ = ['palette', 'segment_files']


def palette(num_classes: int) -> List[tuple[int, int, int]]:
    """One RGB colour per class, PASCAL VOC's colour map: the bits of the class id spread over R, G and B
    from the high bit down (class 1 dark red, 2 dark green, 3 olive, ...)."""
    colours = []
    for c in range(num_classes):
        rgb, rest = [0, 0, 0], c
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((rest >> channel) & 1) << bit
            rest >>= 3
        colours.append(tuple(rgb))
    return colours


@torch.no_grad()
def segment_files(model: nn.Module, files: Sequence[Path], out_dir: Path, alpha: float = 0.5) -> List[Dict[str, Any]]:
    """Segment each file with a :func:`~banet.segmentation.load_segmenter` model (input prepared as in evaluation,
    logits resized back to the image) and write ``out_dir/STEM.png``: the image with every non-background class
    blended in at ``alpha``. Returns per file the share of the image each class covers."""
    model.eval()
    device = next(model.parameters()).device
    cfg, names = model.input_config, model.categories
    resize, colours = eval_transforms(cfg['base_size']), palette(model.num_classes)

    def draw(image: torch.Tensor) -> tuple[torch.Tensor, Dict[str, Any]]:
        x = TF.normalize(TF.to_dtype(resize(image), torch.float32, scale=True), cfg['mean'], cfg['std'])
        logits = model(x[None].to(device))['out']
        labels = F.interpolate(logits, size=image.shape[-2:], mode='bilinear', align_corners=False).argmax(1)[0]
        labels = labels.cpu()
        present = [c for c in labels.unique().tolist() if c != 0]
        drawn = image
        if present:
            masks = labels[None] == torch.tensor(present)[:, None, None]
            drawn = draw_segmentation_masks(image, masks, alpha=alpha, colors=[colours[c] for c in present])
        return drawn, {'classes': {names.get(c, str(c)): round((labels == c).float().mean().item(), 4)
                                   for c in present}}

    return draw_files(files, out_dir, draw)
