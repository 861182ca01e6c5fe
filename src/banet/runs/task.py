"""The seam between the run layer and a task: what classification, detection and segmentation each supply."""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Protocol, Sequence, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader

from .distributed import DistInfo
from .precision import Precision
from .step import BatchLoss

__all__ = ['Data', 'Task']


@dataclass
class Data:
    """A task's loaders: the training loader, the evaluation loader (None where this process does not evaluate),
    and the generators whose states a checkpoint keeps (e.g. the shuffling one)."""
    train: DataLoader
    eval: Optional[Any]
    generators: Dict[str, torch.Generator] = field(default_factory=dict)


class Task(Protocol):
    """A task in the spirit of timm's ``CheckpointSaver`` (the run layer saves, the task adds its own state).

    ``fit(task, cfg)`` (:func:`banet.runs.fit`, in :mod:`banet.runs.loop`) does the rest: run folder, resume,
    loop, epoch tail, metrics. ``print_columns`` (optional) limits the printed line of each epoch.
    """
    name: str                      # 'classify', 'detect', 'segment'
    identity: Sequence[str]        # options a resumed run must keep (e.g. 'model'): the run trained them
    best_metric: str               # the row column whose highest value picks best/, e.g. 'val_top1'
    best_label: str                # how the summary names it, e.g. 'val top-1 (%)'
    train_columns: Sequence[str]   # the training statistics a metrics row keeps
    eval_columns: Sequence[str]    # the evaluation columns of every row (NaN on epochs without evaluation)
    panels: Sequence[Tuple[str, Sequence[str]]]  # summary.png: (title, columns) per panel

    def run_name(self, cfg: Any) -> str: ...            # the default run folder name
    def prepare(self, cfg: Any, info: DistInfo) -> None: ...   # read what the model and data need; fail early
    def build(self, cfg: Any, info: DistInfo, precision: Precision) -> nn.Module: ...
    def loaders(self, cfg: Any, info: DistInfo, model: nn.Module) -> Data: ...
    def loss(self, model: nn.Module, batch: Any) -> BatchLoss: ...
    def evaluate(self, model: nn.Module, loader: Any, info: DistInfo, precision: Precision,
                 progress: bool) -> Dict[str, float]: ...   # every process calls it; every process gets the numbers
    def checkpoint_config(self, model: nn.Module, **extra: Any) -> Dict[str, Any]: ...  # config.json
    def describe(self, cfg: Any, model: nn.Module, info: DistInfo) -> str: ...           # the start line
