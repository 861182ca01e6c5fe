"""Parameter and MAC counts of timm models.

MACs come from PyTorch's own counter, ``torch.utils.flop_counter.FlopCounterMode``: it counts the FLOPs of
convolutions and matrix products (2 per multiply-accumulate) and ignores element-wise ops, norms and pooling, like
fvcore; MACs reported here are its total / 2, so ResNet-50 at 224 px gives the familiar 4.1 GMACs.
"""
from typing import Dict, Optional, Sequence

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ['profile_model', 'profile_table']


@torch.no_grad()
def profile_model(name: str, img_size: Optional[int] = None, **kwargs) -> Dict[str, float]:
    """Params and MACs of ``timm.create_model(name, **kwargs)`` on one image (default: the model's input size)."""
    model = timm.create_model(name, **kwargs).eval()
    chans, height, width = model.pretrained_cfg['input_size']
    if img_size:
        height = width = img_size
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, model.in_chans, height, width))
    return {
        'model': name,
        'img_size': height,
        'params': sum(p.numel() for p in model.parameters()),
        'macs': counter.get_total_flops() / 2,
    }


def profile_table(rows: Sequence[Dict[str, float]]) -> str:
    """A markdown table of :func:`profile_model` results (params in millions, GMACs)."""
    lines = ['| model | img size | params | params (M) | GMACs |', '|---|---:|---:|---:|---:|']
    lines += [
        f"| `{r['model']}` | {r['img_size']} | {r['params']:,} | {r['params'] / 1e6:.2f} | {r['macs'] / 1e9:.3f} |"
        for r in rows
    ]
    return '\n'.join(lines)
