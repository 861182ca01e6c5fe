"""The validation shell of both dense tasks: read a task checkpoint, score it on one or every process, write JSON."""
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Protocol

import torch
from torch import nn

from ..io import Checkpoint, read_checkpoint, save_json_file
from ..runs.distributed import DistInfo, cleanup_distributed, init_distributed
from ..runs.precision import Precision, resolve_precision

__all__ = ['ValidateOptions', 'validate_checkpoint']


class ValidateOptions(Protocol):
    """What the shell reads of a task's validate config (``banet detect|segment validate``'s options)."""
    checkpoint: Optional[str]
    results_file: Optional[str]
    val_split: str
    device: Optional[str]
    threads: Optional[int]
    amp: Any
    amp_dtype: str
    trust_pickle: bool

    def check(self) -> None: ...


Score = Callable[[nn.Module, DistInfo, Precision], Dict[str, Any]]


def validate_checkpoint(cfg: ValidateOptions, task: str, build: Callable[[Checkpoint], nn.Module],
                        score: Score) -> Dict[str, Any]:
    """Score the ``task`` checkpoint ``cfg.checkpoint`` names and write the result as JSON.

    The checkpoint is read by banet's one loader (:func:`banet.io.read_checkpoint`: a checkpoint of another task
    is one clear line; pickles only with ``trust_pickle``), ``build`` rebuilds its model and ``score(model, dist,
    precision)`` returns the metrics (``images`` and the task's numbers). Under torchrun every process scores its
    share and the first one writes ``cfg.results_file`` (default: ``validate-SPLIT.json`` beside the weights).
    """
    cfg.check()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ckpt = read_checkpoint(cfg.checkpoint, trust_pickle=cfg.trust_pickle, task=task)
    model = build(ckpt)
    info = init_distributed(cfg.device)
    try:
        precision = resolve_precision(cfg.amp, cfg.amp_dtype, False, info.device)
        result = {'checkpoint': str(ckpt.file), 'split': cfg.val_split, **score(model.to(info.device), info, precision)}
        out = Path(cfg.results_file) if cfg.results_file else ckpt.file.parent / f'validate-{cfg.val_split}.json'
        if info.primary:
            save_json_file(result, out)
        return {**result, 'results_file': str(out)}
    finally:
        cleanup_distributed()
