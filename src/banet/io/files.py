"""Reading and writing weight files safely: safetensors by default, pickles only when the user trusts them."""
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import torch
from safetensors.torch import load_file, save_file

from ..errors import BanetError, MissingFileError

__all__ = ['atomic_write', 'load_state_dict_file', 'save_json_file', 'save_state_dict_file', 'save_torch_file']

PathLike = Union[str, os.PathLike]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash or error part-way leaves any existing ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private (0600); give it a normal file's mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_state_dict_file(
        state_dict: Dict[str, torch.Tensor], path: PathLike, metadata: Optional[Dict[str, str]] = None) -> Path:
    """Write tensors to a ``.safetensors`` file atomically (shared storage is copied, tensors made contiguous).

    ``metadata`` (str to str) goes into the file's header.
    """
    tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def save_torch_file(obj: Any, path: PathLike) -> Path:
    """``torch.save`` atomically; keep ``obj`` to tensors and plain Python values so ``weights_only`` loads it."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_json_file(obj: Any, path: PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    text = json.dumps(obj, indent=2) + '\n'
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def load_state_dict_file(path: PathLike, trust_pickle: bool = False) -> Dict:
    """Load a ``.safetensors`` file, or a PyTorch pickle with ``torch.load(weights_only=True)``.

    A pickle holding arbitrary Python objects is refused unless ``trust_pickle=True`` (it can run code).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f'no such checkpoint file: {path}')
    if path.suffix == '.safetensors':
        try:
            return load_file(str(path))
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise BanetError(f'{path} is not a readable safetensors file ({e})') from e
    try:
        return torch.load(path, map_location='cpu', weights_only=not trust_pickle)
    except Exception as e:
        if trust_pickle:
            raise BanetError(f'{path} could not be loaded ({e})') from e
        raise BanetError(
            f'{path} could not be loaded as weights only ({type(e).__name__}). If it is a pickle with Python '
            'objects beside the tensors and you trust its source, pass --trust-pickle (trust_pickle=True).') from e
