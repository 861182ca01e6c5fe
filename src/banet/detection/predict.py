"""Detections on image files, drawn as PNGs (boxes, labels and scores; instance masks for Mask R-CNN)."""
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn
from torchvision.transforms.v2 import functional as F
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from ..dense.predict import draw_files
from .evaluate import MASK_THRESHOLD

__all__ = ['detect_files']


@torch.no_grad()
def detect_files(model: nn.Module, files: Sequence[Path], out_dir: Path, score_thresh: float = 0.5,
                 categories: Optional[Dict[int, str]] = None) -> List[Dict[str, Any]]:
    """Run ``model`` on each file, keep detections scoring ``score_thresh`` or more, and write
    ``out_dir/STEM.png`` with them drawn; returns per file its detections (label, score, XYXY box)."""
    model.eval()
    device = next(model.parameters()).device
    categories = categories or getattr(model, 'categories', {})

    def draw(image: torch.Tensor) -> tuple[torch.Tensor, Dict[str, Any]]:
        out = model([F.to_dtype(image, torch.float32, scale=True).to(device)])[0]
        keep = out['scores'] >= score_thresh
        boxes, labels, scores = out['boxes'][keep].cpu(), out['labels'][keep].tolist(), out['scores'][keep].tolist()
        names = [categories.get(c, str(c)) for c in labels]
        drawn = image
        if 'masks' in out and keep.any():
            drawn = draw_segmentation_masks(drawn, out['masks'][keep][:, 0].cpu() > MASK_THRESHOLD, alpha=0.45)
        if len(boxes):
            drawn = draw_bounding_boxes(drawn, boxes, [f'{n} {s:.2f}' for n, s in zip(names, scores)], width=2,
                                        colors='red')
        return drawn, {'detections': [
            {'label': n, 'category_id': c, 'score': round(s, 4), 'box': [round(v, 1) for v in b]}
            for n, c, s, b in zip(names, labels, scores, boxes.tolist())]}

    return draw_files(files, out_dir, draw)
