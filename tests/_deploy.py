"""Helpers for the deployment tests: a small trained-looking model saved as a folder, and image files."""
from pathlib import Path
from typing import List

import numpy as np
import timm
import torch
from PIL import Image

import banet

LABELS = ['shoe', 'shirt', 'bag', 'dress']
DATA_CONFIG = {'input_size': (1, 16, 16), 'interpolation': 'bilinear', 'mean': (0.3,), 'std': (0.4,),
               'crop_pct': 1.0, 'crop_mode': 'center'}


def tiny_model(name: str = 'ba_resnet20_cifar', in_chans: int = 1, num_classes: int = 4, seed: int = 0, **kwargs):
    """An eval-mode model whose norms hold non-default running statistics (as after training)."""
    torch.manual_seed(seed)
    model = timm.create_model(name, num_classes=num_classes, in_chans=in_chans, **kwargs)
    model.train()
    with torch.no_grad():
        model(torch.rand(4, in_chans, 16, 16) * 3 - 1)
    return model.eval()


def save_tiny(folder: Path, **kwargs) -> Path:
    """A 1-channel 16 px ba_resnet20_cifar with four named classes, saved with banet.save_pretrained."""
    return banet.save_pretrained(tiny_model(**kwargs), folder, DATA_CONFIG, LABELS)


def write_images(folder: Path, n: int = 3, size: int = 16, seed: int = 0) -> List[Path]:
    """``n`` grayscale PNGs and one RGB PNG (in that order, by name) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        paths.append(folder / f'img{i}.png')
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), 'L').save(paths[-1])
    paths.append(folder / f'img{n}_rgb.png')
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), 'RGB').save(paths[-1])
    return paths


def manual_input(path: Path, mean: float, std: float) -> torch.Tensor:
    """A grayscale image as the model input, computed without timm: luminance / 255, normalised."""
    with Image.open(path) as img:
        pixels = np.asarray(img.convert('L'), dtype=np.float32) / 255
    return torch.from_numpy((pixels - mean) / std)[None, None]
