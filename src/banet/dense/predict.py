"""The prediction shell of both dense tasks: read each image file, let the task draw on it, write the PNG."""
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import torch
from PIL import Image

from ..io import atomic_write
from .images import read_image

__all__ = ['draw_files']

Draw = Callable[[torch.Tensor], tuple[torch.Tensor, Dict[str, Any]]]


def draw_files(files: Sequence[Path], out_dir: Path, draw: Draw) -> List[Dict[str, Any]]:
    """For each file, ``draw(uint8 image C×H×W)`` returns the drawn image and what was found; the drawing is
    written atomically to ``out_dir/STEM.png``. Returns per file ``{'file', 'output', **found}``."""
    results = []
    for file in files:
        drawn, found = draw(read_image(file))
        target = Path(out_dir) / f'{Path(file).stem}.png'
        pixels = drawn.permute(1, 2, 0).numpy()
        atomic_write(target, lambda tmp: Image.fromarray(pixels).save(tmp, format='PNG'))
        results.append({'file': str(file), 'output': str(target), **found})
    return results
