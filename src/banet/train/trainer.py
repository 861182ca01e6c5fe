"""``train(config)``: build everything from a :class:`TrainConfig`, then run the epochs (one process or torchrun)."""
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import timm
import torch
import yaml
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2, scheduler_kwargs
from timm.utils import ModelEmaV3, NativeScaler, distribute_bn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from ..config import config_dict, from_mapping
from ..errors import BanetError, MissingFileError
from ..io import atomic_write, check_model_name, load_state_dict_file, load_weights, model_config, model_data_config
from .data import DataSpec, build_eval_loader, build_train_loader, dataset_spec
from .distributed import DistInfo, broadcast_object, cleanup_distributed, init_distributed
from .engine import StepConfig, evaluate, train_one_epoch
from .metrics import MetricsLog, plot_metrics
from .options import DataOptions, TrainConfig
from .precision import Precision, resolve_precision
from .state import (EMA_WEIGHTS, WEIGHTS, copy_checkpoint, get_rng_state, load_train_state, save_checkpoint,
                    set_rng_state)

__all__ = ['check_config', 'data_config_for', 'compile_model', 'train', 'saved_config']


def check_config(cfg: DataOptions, splits: List[str]) -> DataSpec:
    """Every check that needs no model or data loading: fail before any work is done."""
    cfg.check()
    if not cfg.model:
        raise BanetError('--model is required (e.g. ba_resnet20_cifar), on the command line or in the config')
    check_model_name(cfg.model)
    if isinstance(cfg, TrainConfig):
        if cfg.resume and not (Path(cfg.resume) / 'last').is_dir():
            raise MissingFileError(f'--resume {cfg.resume}: no last/ checkpoint folder there')
        if cfg.sync_bn and (cfg.device or ('cuda' if torch.cuda.is_available() else 'cpu')).startswith('cpu'):
            raise BanetError('--sync-bn needs CUDA devices (PyTorch\'s SyncBatchNorm does not run on the CPU); '
                             'leave it off, --dist-bn reduce averages the statistics after each epoch')
        if cfg.initial_checkpoint and not Path(cfg.initial_checkpoint).exists():
            raise MissingFileError(f'--initial-checkpoint {cfg.initial_checkpoint} does not exist')
    return dataset_spec(cfg, splits)


def data_config_for(cfg: DataOptions, model: nn.Module, spec: DataSpec) -> Dict[str, Any]:
    """timm's data config of the model, with the dataset's size/channels and any --mean/--std/... given."""
    return model_data_config(model, img_size=cfg.img_size or spec.img_size, mean=cfg.mean, std=cfg.std,
                             crop_pct=cfg.crop_pct, interpolation=cfg.interpolation)


def compile_model(model: nn.Module, cfg: DataOptions) -> nn.Module:
    """``torch.compile(model)`` with the config's backend and mode, or ``model`` itself when compile is off."""
    if not cfg.compile:
        return model
    mode = None if cfg.compile_mode == 'default' else cfg.compile_mode
    return torch.compile(model, backend=cfg.compile_backend, mode=mode)


def _criterion(cfg: TrainConfig, mixup: bool) -> nn.Module:
    if mixup:
        return SoftTargetCrossEntropy()  # Mixup applies the label smoothing
    if cfg.smoothing:
        return LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
    return nn.CrossEntropyLoss()


def _run_dir(cfg: TrainConfig, info: DistInfo) -> Path:
    if cfg.resume:
        return Path(cfg.resume)
    name = cfg.experiment or f'{cfg.model}-{cfg.dataset.replace("/", "_")}-{time.strftime("%Y%m%d-%H%M%S")}'
    return Path(cfg.output) / broadcast_object(name, info)


def _log(info: DistInfo, msg: str) -> None:
    if info.primary:
        print(msg, flush=True)


def saved_config(run_dir: Path) -> Dict[str, Any]:
    """The options a run folder's ``config.yaml`` recorded (checked against :class:`TrainConfig`)."""
    file = Path(run_dir) / 'config.yaml'
    if not file.is_file():
        return {}
    return from_mapping(TrainConfig, yaml.safe_load(file.read_text()) or {}, f'{file}')


def train(config: TrainConfig) -> Dict[str, Any]:
    """Train ``config.model`` on ``config.dataset``; returns the last epoch's metrics, the run folder and the model.

    Example::

        from banet.train import TrainConfig, train
        result = train(TrainConfig(model='ba_resnet20_cifar', dataset='folder', data_dir='digits', epochs=1,
                                   batch_size=32, output='runs', experiment='py'))   # run folder runs/py/
    """
    spec = check_config(config, [config.train_split, config.val_split])
    if config.threads:
        torch.set_num_threads(config.threads)
    info = init_distributed(config.device)
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(config.deterministic or deterministic)
        return _train(config, spec, info)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        cleanup_distributed()


def _start_run(cfg: TrainConfig, info: DistInfo, precision: Precision) -> Path:
    """The run folder; writes and prints the resolved config (after checking a resumed run's model)."""
    run_dir = _run_dir(cfg, info)
    if cfg.resume:
        saved = saved_config(run_dir)
        if saved.get('model', cfg.model) != cfg.model:
            raise BanetError(f'--resume {run_dir}: the run trained {saved["model"]}, not {cfg.model}')
    if info.primary:
        run_dir.mkdir(parents=True, exist_ok=True)
        text = (f'# precision on {info.device}: {precision.describe()}\n'
                + yaml.safe_dump(config_dict(cfg), sort_keys=False))
        atomic_write(run_dir / 'config.yaml', lambda tmp: Path(tmp).write_text(text))
        print(f'config (saved to {run_dir / "config.yaml"}):\n{text}', flush=True)
    return run_dir


def _restore(run_dir: Path, info: DistInfo, model: nn.Module, ema: Optional[ModelEmaV3], optimizer, scheduler,
             scaler, generators: Dict[str, torch.Generator]) -> Tuple[int, Optional[float], int]:
    """Load the last checkpoint of ``run_dir`` into everything; returns (epochs done, best top-1, updates)."""
    state = load_train_state(run_dir)
    if len(state['rng']) != info.world_size:
        raise BanetError(f'--resume {run_dir}: the run used {len(state["rng"])} process(es); resume it with '
                         f'as many (this is {info.world_size}) to continue it exactly')
    model.load_state_dict(load_state_dict_file(run_dir / 'last' / WEIGHTS))
    if ema is not None:
        ema.module.load_state_dict(load_state_dict_file(run_dir / 'last' / EMA_WEIGHTS))
    optimizer.load_state_dict(state['optimizer'])
    scheduler.load_state_dict(state['scheduler'])
    if scaler is not None and state.get('scaler'):
        scaler.load_state_dict(state['scaler'])
    set_rng_state(state['rng'][info.rank], generators)
    scheduler.step(state['epoch'])
    return state['epoch'], state['best'], state['num_updates']


def _train(args: TrainConfig, spec: DataSpec, info: DistInfo) -> Dict[str, Any]:
    started = time.perf_counter()
    precision = resolve_precision(args.amp, args.amp_dtype, args.channels_last, info.device)
    run_dir = _start_run(args, info, precision)
    timm.utils.random_seed(args.seed, info.rank)
    num_classes = args.num_classes or spec.num_classes
    if num_classes < spec.num_classes:
        raise BanetError(f'--num-classes {num_classes} is below the {spec.num_classes} classes of the dataset')
    names = spec.class_names if num_classes == spec.num_classes else None  # saved in config.json
    model = timm.create_model(
        args.model, pretrained=args.pretrained, num_classes=num_classes, in_chans=args.in_chans or spec.in_chans,
        drop_rate=args.drop, **({'drop_path_rate': args.drop_path} if args.drop_path is not None else {}))
    if args.initial_checkpoint:
        load_weights(model, args.initial_checkpoint, trust_pickle=args.trust_pickle)
    data_config = data_config_for(args, model, spec)
    if args.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(info.device)
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(
        model, opt=args.opt, lr=args.lr, weight_decay=args.weight_decay, momentum=args.momentum,
        **({'eps': args.opt_eps} if args.opt_eps is not None else {}),
        **({'betas': tuple(args.opt_betas)} if args.opt_betas else {}))
    scaler = NativeScaler(device=info.device.type) if precision.needs_scaler else None
    ema = ModelEmaV3(model, decay=args.model_ema_decay) if args.model_ema else None

    train_loader = build_train_loader(args, data_config, info.rank, info.world_size, info.device)
    val_loader = build_eval_loader(args, data_config, info.rank, info.world_size, info.device)
    updates_per_epoch = len(train_loader) // args.grad_accum_steps
    scheduler, num_epochs = create_scheduler_v2(optimizer, **scheduler_kwargs(args),
                                                updates_per_epoch=updates_per_epoch)
    generators = {'loader': train_loader.generator}  # TensorLoader's and DataLoader's shuffling generator

    start_epoch, best, num_updates = 0, None, 0
    if args.resume:
        start_epoch, best, num_updates = _restore(run_dir, info, model, ema, optimizer, scheduler, scaler,
                                                  generators)
    log = MetricsLog(run_dir, args.tensorboard) if info.primary else None
    if info.primary:
        log.truncate(start_epoch)
        n_params = sum(p.numel() for p in model.parameters())
        print(f'{args.model}: {n_params:,} parameters, data {data_config["input_size"]}, {info.world_size} '
              f'process(es) on {info.device}, global batch '
              f'{args.batch_size * info.world_size * args.grad_accum_steps}, {updates_per_epoch} updates/epoch\n'
              f'precision: {precision.describe()}' + (f'; torch.compile {args.compile_backend} '
                                                       f'({args.compile_mode})' if args.compile else ''), flush=True)

    eval_net = compile_model(model, args)
    net = eval_net  # evaluation runs outside DDP: no collectives, so the processes may hold unequal shares
    if info.distributed:
        net = DistributedDataParallel(net, device_ids=[info.device] if info.device.type == 'cuda' else None)
    mixup = None
    if args.mixup > 0 or args.cutmix > 0:
        mixup = Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, prob=args.mixup_prob,
                      switch_prob=args.mixup_switch_prob, mode=args.mixup_mode, label_smoothing=args.smoothing,
                      num_classes=num_classes)
    autocast = precision.autocast(info.device)
    step_cfg = StepConfig(
        device=info.device, autocast=autocast, loss_scaler=scaler, clip_grad=args.clip_grad,
        clip_mode=args.clip_mode, accum_steps=args.grad_accum_steps, channels_last=precision.channels_last,
        mixup=mixup, log_interval=args.log_interval, progress=info.primary and args.progress,
        profile_data=args.profile_data)
    criterion = _criterion(args, mixup is not None)

    row: Dict[str, Any] = {}
    for epoch in range(start_epoch, num_epochs):
        if isinstance(getattr(train_loader, 'sampler', None), DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        if hasattr(getattr(train_loader, 'dataset', None), 'set_epoch'):  # timm's streamed readers reshuffle
            train_loader.dataset.set_epoch(epoch)
        stats = train_one_epoch(epoch + 1, net, train_loader, criterion, optimizer, scheduler, step_cfg, ema,
                                num_updates)
        num_updates = stats.pop('num_updates')
        if info.distributed and args.dist_bn:
            distribute_bn(model, info.world_size, args.dist_bn == 'reduce')
        row = {'epoch': epoch + 1, **stats, **{f'val_{k}': math.nan for k in ('loss', 'top1', 'top5', 'img_s')}}
        if (epoch + 1) % args.val_interval == 0 or epoch + 1 == num_epochs:
            val = evaluate(eval_net, val_loader, info.device, autocast, precision.channels_last, step_cfg.progress)
            row.update({f'val_{k}': v for k, v in val.items() if k != 'count'})
            if ema is not None:
                val_ema = evaluate(ema.module, val_loader, info.device, autocast, precision.channels_last,
                                   step_cfg.progress)
                row.update({f'ema_val_{k}': v for k, v in val_ema.items() if k != 'count'})
        validated = not math.isnan(row['val_top1'])
        scheduler.step(epoch + 1, row['val_top1'] if validated else None)
        improved = validated and (best is None or row['val_top1'] > best)
        if improved:
            best = row['val_top1']
        rng = [get_rng_state(generators)]
        if info.distributed:
            gathered = [None] * info.world_size
            torch.distributed.all_gather_object(gathered, rng[0])
            rng = gathered
        if info.primary:
            config = model_config(model, data_config, names, epoch=epoch + 1, precision=precision.as_dict(),
                                  metrics={k: v for k, v in row.items()
                                           if k.startswith(('val', 'ema')) and not math.isnan(v)})
            save_checkpoint(run_dir / 'last', model, config, ema.module if ema else None, {
                'epoch': epoch + 1, 'num_updates': num_updates, 'best': best, 'optimizer': optimizer.state_dict(),
                'scheduler': scheduler.state_dict(), 'scaler': scaler.state_dict() if scaler else None, 'rng': rng})
            if improved:
                copy_checkpoint(run_dir / 'last', run_dir / 'best')
            log.append(row)
            _log(info, ' '.join(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}' for k, v in row.items()))
            if epoch == start_epoch and args.compile:
                _log(info, f'compile + first step: {stats["first_step_s"]:.1f} s (train_img_s excludes it)')
    if info.primary:
        log.close()
        plot = plot_metrics(log.path, run_dir / 'summary.png') if log.path.exists() else None
        best_text = 'none' if best is None else f'{best:.2f} %'
        minutes = (time.perf_counter() - started) / 60
        print(f'{num_epochs - start_epoch} epoch(s) in {minutes:.1f} min; run folder: {run_dir}\n'
              f'  checkpoint: {run_dir / "best"} (best val top-1 {best_text}) and '
              f'{run_dir / "last"}\n  metrics: {log.path}\n  plot: {plot or "(no epoch logged)"}',
              flush=True)
    return {'run_dir': str(run_dir), 'best_top1': best, 'model': model, **row}
