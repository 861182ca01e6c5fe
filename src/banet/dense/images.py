"""Image files as the dense tasks read them: RGB uint8 C×H×W tensors; a file that cannot be read is one line."""
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from ..errors import BanetError

__all__ = ['read_image']


def read_image(path: Path) -> torch.Tensor:
    """The RGB uint8 C×H×W tensor of an image file; BanetError naming the file if it cannot be read."""
    try:
        with Image.open(path) as image:
            return F.pil_to_tensor(image.convert('RGB'))
    except OSError as e:
        raise BanetError(f'cannot read image {path}: {e}') from None
