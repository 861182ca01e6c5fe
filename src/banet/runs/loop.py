"""``fit(task, cfg)``: the one training loop of every task, with the run folder, resume and the epoch tail.

Per epoch: train (:func:`~banet.runs.step.train_one_epoch`), evaluate every ``val_interval`` epochs and after
the last (the EMA weights too), step the schedule, then on the first process the epoch tail: ``best/`` when the
task's metric improved, a row of ``metrics.csv`` (and TensorBoard), then ``last/`` (each folder written whole,
:mod:`banet.runs.checkpoint`), a printed line. Every file of the run folder is a function of the epochs in
``last/``: a run killed at any instant and resumed ends as an uninterrupted one.
"""
import math
import time
from typing import Any, Dict, Optional

import timm
import torch
from timm.utils import ModelEmaV3, NativeScaler, distribute_bn
from torch.nn.parallel import DistributedDataParallel

from ..errors import BanetError
from .checkpoint import save_checkpoint
from .distributed import DistInfo, cleanup_distributed, init_distributed
from .folder import resume_point, run_folder, saved_config, write_config
from .metrics import MetricsLog, plot_metrics
from .optim import build_optimizer, build_scheduler
from .precision import compile_model, resolve_precision
from .resume import Progress, restore
from .rng import gather_rng
from .step import StepConfig, train_one_epoch
from .task import Task

__all__ = ['fit']


def fit(task: Task, cfg: Any) -> Dict[str, Any]:
    """Train ``task`` as ``cfg`` says (one process, or each process of torchrun); returns the last metrics row,
    ``best`` (the best value of ``task.best_metric``), ``run_dir`` and ``model``."""
    cfg.check()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = init_distributed(cfg.device)
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(getattr(cfg, 'deterministic', False) or deterministic)
        return _fit(task, cfg, info)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        cleanup_distributed()


def _line(row: Dict[str, Any], columns: Optional[Any] = None) -> str:
    return ' '.join(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}' for k, v in row.items()
                    if columns is None or k in columns)


def _fit(task: Task, cfg: Any, info: DistInfo) -> Dict[str, Any]:
    started = time.perf_counter()
    task.prepare(cfg, info)
    precision = resolve_precision(cfg.amp, cfg.amp_dtype, cfg.channels_last, info.device)
    run_dir = run_folder(cfg, task.run_name(cfg), info)
    if cfg.resume:
        saved = saved_config(run_dir, type(cfg))
        for key in task.identity:
            if saved.get(key, getattr(cfg, key)) != getattr(cfg, key):
                raise BanetError(f'--resume {run_dir}: the run trained {key} {saved[key]}, not {getattr(cfg, key)}')
    write_config(run_dir, cfg, precision, info)
    timm.utils.random_seed(cfg.seed, info.rank)
    model = task.build(cfg, info, precision).to(info.device)
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, model)
    scaler = NativeScaler(device=info.device.type) if precision.needs_scaler else None
    ema = ModelEmaV3(model, decay=cfg.model_ema_decay) if cfg.model_ema else None
    data = task.loaders(cfg, info, model)
    updates_per_epoch = len(data.train) // cfg.grad_accum_steps
    scheduler, num_epochs = build_scheduler(cfg, optimizer, updates_per_epoch)

    progress = Progress()
    folder = resume_point(run_dir, cfg.resume, info)
    if folder is not None:
        progress = restore(folder, info, model, optimizer, scheduler, scaler, ema.module if ema else None,
                           data.generators)
    log = MetricsLog(run_dir, cfg.tensorboard) if info.primary else None
    if log is not None:
        log.truncate(progress.epoch)
        print(f'{task.describe(cfg, model, info)}; {info.world_size} process(es) on {info.device}, global batch '
              f'{cfg.batch_size * info.world_size * cfg.grad_accum_steps}, {updates_per_epoch} updates/epoch\n'
              f'precision: {precision.describe()}' + (f'; torch.compile {cfg.compile_backend} ({cfg.compile_mode})'
                                                      if cfg.compile else ''), flush=True)

    eval_net = compile_model(model, cfg)
    net = eval_net  # evaluation runs outside DDP: no collectives of DDP's, each process evaluates its share
    if info.distributed:
        net = DistributedDataParallel(net, device_ids=[info.device] if info.device.type == 'cuda' else None)
    step = StepConfig(device=info.device, autocast=precision.autocast(info.device), loss_scaler=scaler,
                      clip_grad=cfg.clip_grad, clip_mode=cfg.clip_mode, accum_steps=cfg.grad_accum_steps,
                      log_interval=cfg.log_interval, progress=info.primary and cfg.progress,
                      profile_data=getattr(cfg, 'profile_data', False))
    row: Dict[str, Any] = {}
    best, num_updates = progress.best, progress.num_updates
    for epoch in range(progress.epoch, num_epochs):
        for reshuffled in (getattr(data.train, 'sampler', None), getattr(data.train, 'dataset', None)):
            if hasattr(reshuffled, 'set_epoch'):  # DistributedSampler; timm's streamed readers
                reshuffled.set_epoch(epoch)
        stats = train_one_epoch(epoch + 1, net, data.train, task.loss, optimizer, scheduler, step, ema,
                                num_updates)
        num_updates = stats['num_updates']
        if info.distributed and getattr(cfg, 'dist_bn', ''):
            distribute_bn(model, info.world_size, cfg.dist_bn == 'reduce')
        row = {'epoch': epoch + 1, **{k: stats[k] for k in task.train_columns},
               **{k: math.nan for k in task.eval_columns}}
        evaluated: Dict[str, float] = {}
        if (epoch + 1) % cfg.val_interval == 0 or epoch + 1 == num_epochs:
            evaluated = task.evaluate(eval_net, data.eval, info, precision, step.progress)
            if ema is not None:
                evaluated.update({f'ema_{k}': v for k, v in
                                  task.evaluate(ema.module, data.eval, info, precision, step.progress).items()})
            row.update(evaluated)
        value = row.get(task.best_metric, math.nan)
        scheduler.step(epoch + 1, None if math.isnan(value) else value)
        improved = not math.isnan(value) and (best is None or value > best)
        best = value if improved else best
        rng = gather_rng(data.generators, info)
        if info.primary:
            config = task.checkpoint_config(model, epoch=epoch + 1, precision=precision.as_dict(),
                                            metrics={k: v for k, v in evaluated.items() if not math.isnan(v)})
            # best/ and the metrics row first: a kill before last/ is complete repeats this epoch, and them with it
            if improved:
                save_checkpoint(run_dir / 'best', model, config, ema.module if ema else None)
            log.append(row)
            save_checkpoint(run_dir / 'last', model, config, ema.module if ema else None, {
                'epoch': epoch + 1, 'num_updates': num_updates, 'best': best, 'optimizer': optimizer.state_dict(),
                'scheduler': scheduler.state_dict(), 'scaler': scaler.state_dict() if scaler else None, 'rng': rng})
            print(_line(row, getattr(task, 'print_columns', None)), flush=True)
            if epoch == progress.epoch and cfg.compile:
                print(f'compile + first step: {stats["first_step_s"]:.1f} s (train_img_s excludes it)', flush=True)
    if info.primary:
        log.close()
        plot = plot_metrics(log.path, run_dir / 'summary.png', task.panels) if log.path.exists() else None
        best_text = 'none' if best is None else f'{best:.4g}'
        print(f'{num_epochs - progress.epoch} epoch(s) in {(time.perf_counter() - started) / 60:.1f} min; run '
              f'folder: {run_dir}\n  checkpoint: {run_dir / "best"} (best {task.best_label} {best_text}) and '
              f'{run_dir / "last"}\n  metrics: {log.path}\n  plot: {plot or "(no epoch logged)"}', flush=True)
    return {'run_dir': str(run_dir), 'best': best, 'model': model, **row}
