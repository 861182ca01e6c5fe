"""A run's checkpoint folders (``last/``, ``best/``) and the random-number states that make a resume exact.

Each folder holds ``model.safetensors`` (+ ``model_ema.safetensors``), a ``config.json`` written by
:func:`banet.io.model_config` (so ``timm.create_model('local-dir:FOLDER', pretrained=True)`` rebuilds and loads the
model after ``import banet``), and in ``last/`` a
``train_state.pt`` (optimiser, scheduler, scaler, RNG states, epoch) that loads with ``weights_only=True``.
Every file is written atomically; the weights carry their epoch in the safetensors header so that a resume can
check that they match the training state.
"""
import random
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from safetensors import safe_open
from torch import nn

from ..errors import BanetError, MissingFileError
from ..io import CONFIG, EMA_WEIGHTS, WEIGHTS, load_state_dict_file, save_json_file, save_state_dict_file, \
    save_torch_file

__all__ = ['get_rng_state', 'set_rng_state', 'save_checkpoint', 'copy_checkpoint', 'load_train_state']

TRAIN_STATE = 'train_state.pt'


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


def save_checkpoint(
        folder: Path,
        model: nn.Module,
        config: Dict[str, Any],
        ema: Optional[nn.Module] = None,
        train_state: Optional[Dict[str, Any]] = None,
) -> None:
    """Write weights, EMA weights, config.json and (optionally) the training state into ``folder``.

    The training state goes last: a crash part-way leaves the previous one, which a resume checks against the
    epoch in the weights' header.
    """
    meta = {'epoch': str(config.get('epoch', ''))}
    save_state_dict_file(model.state_dict(), folder / WEIGHTS, metadata=meta)
    if ema is not None:
        save_state_dict_file(ema.state_dict(), folder / EMA_WEIGHTS, metadata=meta)
    save_json_file(config, folder / CONFIG)
    if train_state is not None:
        save_torch_file(train_state, folder / TRAIN_STATE)


def copy_checkpoint(src: Path, dst: Path) -> None:
    """Copy the weights and config of ``src`` into ``dst`` (each file atomically, no training state)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, EMA_WEIGHTS, CONFIG):
        if (src / name).is_file():
            tmp = dst / f'.{name}.tmp'
            shutil.copyfile(src / name, tmp)
            tmp.replace(dst / name)


def load_train_state(run_dir: Path) -> Dict[str, Any]:
    """The training state of ``run_dir/last`` (weights_only), checked against the epoch of its weights."""
    last = run_dir / 'last'
    if not (last / TRAIN_STATE).is_file():
        raise MissingFileError(f'cannot resume: {last / TRAIN_STATE} does not exist (is {run_dir} a run folder?)')
    state = load_state_dict_file(last / TRAIN_STATE)
    with safe_open(str(last / WEIGHTS), 'pt') as f:
        epoch = (f.metadata() or {}).get('epoch')
    if epoch != str(state['epoch']):
        raise BanetError(f'{last}: the weights (epoch {epoch}) and the training state (epoch {state["epoch"]}) '
                           'do not match; the run was interrupted while saving')
    return state
