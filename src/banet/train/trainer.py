"""``train(args)``: build everything from the resolved options, then run the epochs (one process or torchrun)."""
import math
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import timm
import torch
import yaml
from timm.data import Mixup, resolve_data_config
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2, scheduler_kwargs
from timm.utils import ModelEmaV3, NativeScaler, distribute_bn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from ..checkpoint import atomic_write, load_state_dict_file
from ..hub import model_config, per_channel_norm
from .config import resolved_config
from .data import DataSpec, build_loader, dataset_spec
from .distributed import DistInfo, broadcast_object, cleanup_distributed, init_distributed
from .engine import StepConfig, evaluate, train_one_epoch
from .metrics import MetricsLog, plot_metrics
from .state import (EMA_WEIGHTS, WEIGHTS, copy_checkpoint, get_rng_state, load_train_state, save_checkpoint,
                    set_rng_state)

__all__ = ['autocast_for', 'check_args', 'data_config_for', 'train']


def check_args(args: Any, splits) -> DataSpec:
    """Every check that needs no model or data loading: fail before any work is done."""
    if not args.model:
        raise ValueError('--model is required (e.g. ba_resnet20_cifar), on the command line or in the config')
    if not timm.is_model(args.model):
        raise ValueError(f'unknown model {args.model!r}: see timm.list_models("*resnet*") for names')
    for name in ('batch_size', 'epochs', 'grad_accum_steps'):
        if getattr(args, name, 1) < 1:
            raise ValueError(f'--{name.replace("_", "-")} must be at least 1')
    if getattr(args, 'resume', None) and not (Path(args.resume) / 'last').is_dir():
        raise FileNotFoundError(f'--resume {args.resume}: no last/ checkpoint folder there')
    if getattr(args, 'sync_bn', False) and (args.device or ('cuda' if torch.cuda.is_available() else 'cpu')) \
            .startswith('cpu'):
        raise ValueError('--sync-bn needs CUDA devices (PyTorch\'s SyncBatchNorm does not run on the CPU); '
                         'leave it off, --dist-bn reduce averages the statistics after each epoch')
    if getattr(args, 'initial_checkpoint', None) and not Path(args.initial_checkpoint).is_file():
        raise FileNotFoundError(f'--initial-checkpoint {args.initial_checkpoint} does not exist')
    if getattr(args, 'mixup', 0) or getattr(args, 'cutmix', 0):
        if args.batch_size % 2:
            raise ValueError('mixup/cutmix need an even --batch-size')
    return dataset_spec(args, splits)


def data_config_for(args: Any, model: nn.Module, spec: DataSpec) -> Dict[str, Any]:
    """timm's data config of the model, with the dataset's size/channels and any --mean/--std/... given."""
    in_chans = args.in_chans or spec.in_chans
    overrides = dict(in_chans=in_chans, img_size=args.img_size or spec.img_size, mean=args.mean, std=args.std,
                     crop_pct=args.crop_pct, interpolation=args.interpolation)
    return per_channel_norm(resolve_data_config(overrides, model=model), in_chans)


def autocast_for(args: Any, device: torch.device):
    if not args.amp:
        return nullcontext
    return partial(torch.autocast, device_type=device.type, dtype=getattr(torch, args.amp_dtype))


def _criterion(args: Any, mixup: bool) -> nn.Module:
    if mixup:
        return SoftTargetCrossEntropy()  # Mixup applies the label smoothing
    if args.smoothing:
        return LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    return nn.CrossEntropyLoss()


def _run_dir(args: Any, info: DistInfo) -> Path:
    if args.resume:
        return Path(args.resume)
    name = args.experiment or f'{args.model}-{args.dataset}-{time.strftime("%Y%m%d-%H%M%S")}'
    return Path(args.output) / broadcast_object(name, info)


def _log(info: DistInfo, msg: str) -> None:
    if info.primary:
        print(msg, flush=True)


def train(args: Any) -> Dict[str, Any]:
    """Train ``args.model`` on ``args.dataset``; returns the last epoch's metrics, the run folder and the model."""
    spec = check_args(args, [args.train_split, args.val_split])
    if args.threads:
        torch.set_num_threads(args.threads)
    info = init_distributed(args.device)
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(args.deterministic or deterministic)
        return _train(args, spec, info)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        cleanup_distributed()


def _start_run(args: Any, info: DistInfo) -> Path:
    """The run folder; writes and prints the resolved config (after checking a resumed run's model)."""
    run_dir = _run_dir(args, info)
    if args.resume:
        saved = yaml.safe_load((run_dir / 'config.yaml').read_text()) if (run_dir / 'config.yaml').is_file() else {}
        if saved.get('model', args.model) != args.model:
            raise ValueError(f'--resume {run_dir}: the run trained {saved["model"]}, not {args.model}')
    if info.primary:
        run_dir.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(resolved_config(args), sort_keys=False)
        atomic_write(run_dir / 'config.yaml', lambda tmp: Path(tmp).write_text(text))
        print(f'config (saved to {run_dir / "config.yaml"}):\n{text}', flush=True)
    return run_dir


def _restore(run_dir: Path, info: DistInfo, model: nn.Module, ema: Optional[ModelEmaV3], optimizer, scheduler,
             scaler, generators: Dict[str, torch.Generator]) -> Tuple[int, Optional[float], int]:
    """Load the last checkpoint of ``run_dir`` into everything; returns (epochs done, best top-1, updates)."""
    state = load_train_state(run_dir)
    if len(state['rng']) != info.world_size:
        raise ValueError(f'--resume {run_dir}: the run used {len(state["rng"])} process(es); resume it with '
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


def _train(args: Any, spec: DataSpec, info: DistInfo) -> Dict[str, Any]:
    started = time.perf_counter()
    run_dir = _start_run(args, info)
    timm.utils.random_seed(args.seed, info.rank)
    num_classes = args.num_classes or spec.num_classes
    if num_classes < spec.num_classes:
        raise ValueError(f'--num-classes {num_classes} is below the {spec.num_classes} classes of the dataset')
    names = spec.class_names if num_classes == spec.num_classes else None  # saved in config.json
    model = timm.create_model(
        args.model, pretrained=args.pretrained, num_classes=num_classes, in_chans=args.in_chans or spec.in_chans,
        drop_rate=args.drop, **({'drop_path_rate': args.drop_path} if args.drop_path is not None else {}))
    if args.initial_checkpoint:
        model.load_state_dict(load_state_dict_file(args.initial_checkpoint, args.trust_pickle))
    data_config = data_config_for(args, model, spec)
    if args.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(info.device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(
        model, opt=args.opt, lr=args.lr, weight_decay=args.weight_decay, momentum=args.momentum,
        **({'eps': args.opt_eps} if args.opt_eps is not None else {}),
        **({'betas': tuple(args.opt_betas)} if args.opt_betas else {}))
    scaler = NativeScaler(device=info.device.type) if args.amp and args.amp_dtype == 'float16' else None
    ema = ModelEmaV3(model, decay=args.model_ema_decay) if args.model_ema else None

    train_loader = build_loader(args, data_config, True, info.rank, info.world_size, info.device)
    val_loader = build_loader(args, data_config, False, info.rank, info.world_size, info.device)
    updates_per_epoch = len(train_loader) // args.grad_accum_steps
    scheduler, num_epochs = create_scheduler_v2(optimizer, **scheduler_kwargs(args),
                                                updates_per_epoch=updates_per_epoch)
    generators = {'loader': train_loader.generator}

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
              f'{args.batch_size * info.world_size * args.grad_accum_steps}, {updates_per_epoch} updates/epoch',
              flush=True)

    eval_net = torch.compile(model, backend=args.torchcompile) if args.torchcompile else model
    net = eval_net  # evaluation runs outside DDP: no collectives, so the processes may hold unequal shares
    if info.distributed:
        net = DistributedDataParallel(net, device_ids=[info.device] if info.device.type == 'cuda' else None)
    mixup = None
    if args.mixup > 0 or args.cutmix > 0:
        mixup = Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, prob=args.mixup_prob,
                      switch_prob=args.mixup_switch_prob, mode=args.mixup_mode, label_smoothing=args.smoothing,
                      num_classes=num_classes)
    autocast = autocast_for(args, info.device)
    step_cfg = StepConfig(
        device=info.device, autocast=autocast, loss_scaler=scaler, clip_grad=args.clip_grad,
        clip_mode=args.clip_mode, accum_steps=args.grad_accum_steps, channels_last=args.channels_last,
        mixup=mixup, log_interval=args.log_interval, progress=info.primary and not args.no_progress,
        profile_data=args.profile_data)
    criterion = _criterion(args, mixup is not None)

    row: Dict[str, Any] = {}
    for epoch in range(start_epoch, num_epochs):
        if isinstance(getattr(train_loader, 'sampler', None), DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        stats = train_one_epoch(epoch + 1, net, train_loader, criterion, optimizer, scheduler, step_cfg, ema,
                                num_updates)
        num_updates = stats.pop('num_updates')
        if info.distributed and args.dist_bn:
            distribute_bn(model, info.world_size, args.dist_bn == 'reduce')
        row = {'epoch': epoch + 1, **stats, **{f'val_{k}': math.nan for k in ('loss', 'top1', 'top5', 'img_s')}}
        if (epoch + 1) % args.val_interval == 0 or epoch + 1 == num_epochs:
            val = evaluate(eval_net, val_loader, info.device, autocast, args.channels_last, step_cfg.progress)
            row.update({f'val_{k}': v for k, v in val.items() if k != 'count'})
            if ema is not None:
                val_ema = evaluate(ema.module, val_loader, info.device, autocast, args.channels_last,
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
            config = model_config(model, data_config, names, epoch=epoch + 1,
                                  metrics={k: v for k, v in row.items()
                                           if k.startswith(('val', 'ema')) and not math.isnan(v)})
            save_checkpoint(run_dir / 'last', model, config, ema.module if ema else None, {
                'epoch': epoch + 1, 'num_updates': num_updates, 'best': best, 'optimizer': optimizer.state_dict(),
                'scheduler': scheduler.state_dict(), 'scaler': scaler.state_dict() if scaler else None, 'rng': rng})
            if improved:
                copy_checkpoint(run_dir / 'last', run_dir / 'best')
            log.append(row)
            _log(info, ' '.join(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}' for k, v in row.items()))
    if info.primary:
        log.close()
        plot = plot_metrics(log.path, run_dir / 'summary.png') if log.path.exists() else None
        minutes = (time.perf_counter() - started) / 60
        print(f'{num_epochs - start_epoch} epoch(s) in {minutes:.1f} min; run folder: {run_dir}\n'
              f'  checkpoint: {run_dir / "best"} (best val top-1 {best}) and '
              f'{run_dir / "last"}\n  metrics: {log.path}\n  plot: {plot or "(matplotlib not installed)"}',
              flush=True)
    return {'run_dir': str(run_dir), 'best_top1': best, 'model': model, **row}
