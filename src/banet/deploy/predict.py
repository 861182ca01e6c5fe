"""Classifying image files: the model's own preprocessing (timm's eval transform from its cfg), batched top-k.

Files that cannot be read as images are reported by name and skipped; the others are still classified.
"""
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from PIL import Image
from timm.data import create_transform
from torch import nn

from ..errors import BanetError
from ..io import PathLike, input_channels, label_names_of, model_data_config

__all__ = ['Predictions', 'collect_files', 'image_mode', 'load_images', 'predict_files', 'predict_tensor',
           'preprocess']


def image_mode(model: nn.Module) -> str:
    """The PIL mode the model's input has: 'L' for 1 channel, 'RGB' for 3."""
    chans = input_channels(model)
    if chans not in (1, 3):
        raise BanetError(f'the model takes {chans}-channel input; image files give 1 (grayscale) or 3 (RGB) '
                         'channels: feed it tensors instead')
    return 'L' if chans == 1 else 'RGB'


def collect_files(paths: Iterable[PathLike]) -> List[Path]:
    """The files named, with every file under a named folder (sorted, hidden ones left out)."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob('*') if f.is_file()
                            and not any(part.startswith('.') for part in f.relative_to(p).parts))
        else:
            files.append(p)
    return files


def preprocess(model: nn.Module):
    """timm's eval transform for ``model``'s data config (resize, centre crop, to tensor, normalise)."""
    return create_transform(**model_data_config(model), is_training=False)


def load_images(files: Sequence[Path], model: nn.Module) -> Tuple[List[Path], List[torch.Tensor], Dict[str, str]]:
    """Read and preprocess ``files`` for ``model``: (files read, their tensors, {unreadable file: reason}).

    Images are converted to the model's channels (colour to grayscale for a 1-channel model).
    """
    mode, transform = image_mode(model), preprocess(model)
    read, tensors, skipped = [], [], {}
    for f in files:
        try:
            with Image.open(f) as img:
                tensors.append(transform(img.convert(mode)))
            read.append(f)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # missing, not an image, truncated
            skipped[str(f)] = str(e) or type(e).__name__
    return read, tensors, skipped


@torch.no_grad()
def predict_tensor(model: nn.Module, x: torch.Tensor, top_k: int = 5,
                   autocast: Callable[[], Any] = nullcontext) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-k (probabilities, class indices) of a preprocessed batch, each (B, k); ``autocast`` as
    :meth:`banet.train.Precision.autocast` gives it."""
    with autocast():
        logits = model(x)
    probs = logits.float().softmax(dim=1)
    return probs.topk(min(top_k, probs.shape[1]), dim=1)


@dataclass
class Predictions:
    """Per-file top-k results and the files that were skipped (file -> reason)."""
    results: List[Dict] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)


def predict_files(model: nn.Module, paths: Iterable[PathLike], top_k: int = 5, batch_size: int = 32,
                  names: Optional[Sequence[str]] = None, autocast: Callable[[], Any] = nullcontext) -> Predictions:
    """Classify image files and folders in batches of ``batch_size``; labels from ``names`` or the model's cfg."""
    if top_k < 1 or batch_size < 1:
        raise BanetError(f'top-k ({top_k}) and batch size ({batch_size}) must be >= 1')
    model.eval()
    names = names or label_names_of(model)
    files = collect_files(paths)
    out = Predictions()
    for start in range(0, len(files), batch_size):
        read, tensors, skipped = load_images(files[start:start + batch_size], model)
        out.skipped.update(skipped)
        if not read:
            continue
        probs, idx = predict_tensor(model, torch.stack(tensors), top_k, autocast)
        for f, p_row, i_row in zip(read, probs.tolist(), idx.tolist()):
            out.results.append({'file': str(f), 'top_k': [
                {'class': i, 'label': names[i] if names else str(i), 'prob': p} for i, p in zip(i_row, p_row)]})
    return out
