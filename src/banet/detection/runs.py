"""Run-folder plumbing of the trainers on COCO-layout data (``banet detect train``, ``banet segment train``).

The run folder, its ``config.yaml``, the backbone's classification weights, the seeded training loader, the
per-process RNG states and the exact resume from ``RUN/last/`` are the same for every task; each trainer keeps its
own model, loss, metrics and checkpoint description.
"""
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler

from ..config import config_dict
from ..dense.features import WeightsReport
from ..errors import BanetError, MissingFileError
from ..io import WEIGHTS, atomic_write, load_state_dict_file, read_checkpoint
from ..train.distributed import DistInfo, broadcast_object, cleanup_distributed, init_distributed
from ..train.metrics import MetricsLog, plot_metrics
from ..train.precision import Precision
from ..train.state import get_rng_state, load_train_state, set_rng_state
from .options import CocoTrainOptions

__all__ = ['run_distributed', 'class_count', 'start_run', 'backbone_weights', 'report_backbone', 'train_loader',
           'gather_rng', 'restore_run', 'finish_run']


def run_distributed(cfg: CocoTrainOptions, train: Callable[[Any, DistInfo], Dict[str, Any]]) -> Dict[str, Any]:
    """Check ``cfg``, set the threads, start the process group (a no-op outside torchrun) and run
    ``train(cfg, info)``, closing the group whatever happens."""
    cfg.check()
    if cfg.resume and not (Path(cfg.resume) / 'last').is_dir():
        raise MissingFileError(f'--resume {cfg.resume}: no last/ checkpoint folder there')
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = init_distributed(cfg.device)
    try:
        return train(cfg, info)
    finally:
        cleanup_distributed()


def class_count(categories: Mapping[int, str], requested: Optional[int]) -> int:
    """``requested`` or the largest category id + 1 (class 0 is the background); BanetError if it is too small."""
    largest = max(categories, default=0)
    num_classes = requested or largest + 1
    if num_classes <= largest:
        raise BanetError(f'--num-classes {num_classes} is not above the largest category id {largest}')
    return num_classes


def start_run(cfg: CocoTrainOptions, info: DistInfo, precision: Precision, arch: str) -> Path:
    """The run folder (``--resume``'s, or ``OUTPUT/EXPERIMENT``, default ``ARCH-BACKBONE-TIME``, the same on every
    process); the first process creates it and writes and prints ``config.yaml``."""
    if cfg.resume:
        run_dir = Path(cfg.resume)
    else:
        name = cfg.experiment or f'{arch}-{cfg.backbone}-{time.strftime("%Y%m%d-%H%M%S")}'
        run_dir = Path(cfg.output) / broadcast_object(name, info)
    if info.primary:
        run_dir.mkdir(parents=True, exist_ok=True)
        text = f'# precision on {info.device}: {precision.describe()}\n' + yaml.safe_dump(config_dict(cfg),
                                                                                           sort_keys=False)
        atomic_write(run_dir / 'config.yaml', lambda tmp: Path(tmp).write_text(text))
        print(f'config (saved to {run_dir / "config.yaml"}):\n{text}', flush=True)
    return run_dir


def backbone_weights(cfg: CocoTrainOptions) -> Optional[Dict[str, torch.Tensor]]:
    """The classification state dict ``--backbone-checkpoint`` names, read by banet's one loader (None without)."""
    if not cfg.backbone_checkpoint:
        return None
    return read_checkpoint(cfg.backbone_checkpoint, trust_pickle=cfg.trust_pickle).state_dict


def report_backbone(cfg: CocoTrainOptions, report: Optional[WeightsReport], info: DistInfo) -> None:
    """Print how the classification weights fitted the backbone (first process, only when some were given)."""
    if info.primary and report is not None:
        print(f'backbone initialised from {cfg.backbone_checkpoint}: {len(report.missing_keys)} missing, '
              f'{len(report.unexpected_keys)} unexpected key(s)', flush=True)


def train_loader(dataset: Dataset, cfg: CocoTrainOptions, info: DistInfo,
                 collate_fn: Optional[Callable] = None) -> tuple[DataLoader, Sampler, torch.Generator]:
    """The shuffled training loader (``drop_last``; a ``DistributedSampler`` under torchrun), its sampler and the
    generator whose state a checkpoint keeps (seeded with ``seed + rank``)."""
    generator = torch.Generator().manual_seed(cfg.seed + info.rank)
    sampler = DistributedSampler(dataset, info.world_size, info.rank, seed=cfg.seed, drop_last=True) \
        if info.distributed else RandomSampler(dataset, generator=generator)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                        num_workers=cfg.workers, collate_fn=collate_fn, generator=generator)
    return loader, sampler, generator


def gather_rng(generator: torch.Generator, info: DistInfo) -> list:
    """Every process's RNG states (Python, NumPy, torch, the loader's generator), in rank order."""
    rng = [get_rng_state({'loader': generator})]
    if info.distributed:
        gathered = [None] * info.world_size
        torch.distributed.all_gather_object(gathered, rng[0])
        rng = gathered
    return rng


def restore_run(run_dir: Path, info: DistInfo, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                generator: torch.Generator) -> Dict[str, Any]:
    """Load ``run_dir/last`` into the model, optimiser, scheduler and RNGs; returns the training state (its
    ``epoch``, ``best``, ``num_updates``, and whatever else the trainer saved)."""
    state = load_train_state(run_dir)
    if len(state['rng']) != info.world_size:
        raise BanetError(f'--resume {run_dir}: the run used {len(state["rng"])} process(es); resume it with '
                         f'as many (this is {info.world_size}) to continue it exactly')
    model.load_state_dict(load_state_dict_file(run_dir / 'last' / WEIGHTS))
    optimizer.load_state_dict(state['optimizer'])
    scheduler.load_state_dict(state['scheduler'])
    set_rng_state(state['rng'][info.rank], {'loader': generator})
    return state


def finish_run(log: MetricsLog, run_dir: Path, panels: Any, epochs: int, started: float, best: Optional[float],
               best_name: str) -> None:
    """Close ``metrics.csv``, draw ``summary.png`` with ``panels`` and print where the run's files are."""
    log.close()
    plot = plot_metrics(log.path, run_dir / 'summary.png', panels=panels)
    best_text = 'none' if best is None else f'{best:.3f}'
    print(f'{epochs} epoch(s) in {(time.perf_counter() - started) / 60:.1f} min; run folder: {run_dir}\n'
          f'  checkpoint: {run_dir / "best"} (best {best_name} {best_text}) and {run_dir / "last"}\n'
          f'  metrics: {log.path}\n  plot: {plot}', flush=True)
