"""One resume for every task: model, EMA, optimiser, scheduler, loss scaler and RNG states from a ``last/``."""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..errors import BanetError
from ..io import EMA_WEIGHTS, WEIGHTS, load_state_dict_file
from .checkpoint import load_train_state
from .distributed import DistInfo
from .rng import set_rng_state

__all__ = ['Progress', 'restore']


@dataclass
class Progress:
    """Where a run stands: epochs done, the best value of the task's metric so far, optimiser updates."""
    epoch: int = 0
    best: Optional[float] = None
    num_updates: int = 0


def restore(folder: Path, info: DistInfo, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            scaler: Any = None, ema: Optional[nn.Module] = None,
            generators: Optional[Dict[str, torch.Generator]] = None) -> Progress:
    """Load checkpoint ``folder`` into everything a run steps; the run continues after its epoch exactly."""
    state = load_train_state(folder)
    if len(state['rng']) != info.world_size:
        raise BanetError(f'--resume {folder.parent}: the run used {len(state["rng"])} process(es); resume it with '
                         f'as many (this is {info.world_size}) to continue it exactly')
    model.load_state_dict(load_state_dict_file(folder / WEIGHTS))
    if ema is not None:
        ema.load_state_dict(load_state_dict_file(folder / EMA_WEIGHTS))
    optimizer.load_state_dict(state['optimizer'])
    scheduler.load_state_dict(state['scheduler'])
    if scaler is not None and state.get('scaler'):
        scaler.load_state_dict(state['scaler'])
    set_rng_state(state['rng'][info.rank], generators or {})
    scheduler.step(state['epoch'])
    return Progress(state['epoch'], state['best'], state['num_updates'])
