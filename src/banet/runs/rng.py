"""The random-number states that make a resume exact: Python, NumPy, torch (CPU, CUDA) and named generators."""
import random
from typing import Any, Dict, List

import numpy as np
import torch

from .distributed import DistInfo

__all__ = ['get_rng_state', 'set_rng_state', 'gather_rng']


def get_rng_state(generators: Dict[str, torch.Generator]) -> Dict[str, Any]:
    """Python, NumPy, torch (CPU and CUDA) and the named generators' states, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': {'kind': kind, 'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                  'has_gauss': int(has_gauss), 'gauss': float(gauss)},
        'torch': torch.get_rng_state(),
        'generators': {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any], generators: Dict[str, torch.Generator]) -> None:
    """Restore what :func:`get_rng_state` saved."""
    random.setstate(state['python'])
    n = state['numpy']
    np.random.set_state((n['kind'], n['keys'].numpy().astype(np.uint32), n['pos'], n['has_gauss'], n['gauss']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    for k, g in generators.items():
        g.set_state(state['generators'][k])


def gather_rng(generators: Dict[str, torch.Generator], info: DistInfo) -> List[Dict[str, Any]]:
    """Every process's RNG states, in rank order (a collective under torchrun: every process calls it)."""
    rng = [get_rng_state(generators)]
    if info.distributed:
        gathered: List[Any] = [None] * info.world_size
        torch.distributed.all_gather_object(gathered, rng[0])
        rng = gathered
    return rng
