"""``validate(config)``: top-1/top-5, loss and images/s of a checkpoint or a registered model on a dataset."""
import dataclasses
import json
from pathlib import Path
from typing import Any, Dict

import timm
import torch

from ..errors import BanetError
from ..io import load_model, read_config, save_json_file
from .data import build_eval_loader
from ..runs import cleanup_distributed, compile_model, init_distributed, resolve_precision
from .evaluate import evaluate
from .options import ValidateConfig
from .trainer import check_config, data_config_for

__all__ = ['validate']


def validate(config: ValidateConfig) -> Dict[str, Any]:
    """Evaluate ``config.checkpoint`` (any source :func:`banet.io.load_model` takes) or ``config.model``.

    A checkpoint with a ``config.json`` names its model and preprocessing; bare weights need ``model``.
    """
    cfg = config
    if cfg.use_ema and not cfg.checkpoint:
        raise BanetError('--use-ema needs --checkpoint (a run folder trained with --model-ema)')
    saved: Dict[str, Any] = {}
    weights = None
    if cfg.checkpoint:
        weights, found = read_config(cfg.checkpoint, cfg.use_ema, cfg.trust_pickle)
        saved = found or {}
    model_name = cfg.model or saved.get('architecture')
    if not model_name:
        raise BanetError('give --model NAME, or --checkpoint a run folder (its config.json names the model)')
    cfg = dataclasses.replace(config, model=model_name)
    spec = check_config(cfg, [cfg.val_split])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = init_distributed(cfg.device)
    try:
        if weights is None and not cfg.pretrained and info.primary:
            print(f'note: no --checkpoint or --pretrained: evaluating a randomly initialised {cfg.model}')
        build = dict(num_classes=cfg.num_classes or spec.num_classes, in_chans=cfg.in_chans or spec.in_chans)
        if cfg.checkpoint:
            model = load_model(cfg.checkpoint, None if saved else cfg.model, cfg.use_ema, cfg.trust_pickle,
                               **build)
            if saved and cfg.model != saved['architecture']:
                raise BanetError(f'--model {cfg.model} does not match the checkpoint\'s architecture '
                                 f'{saved["architecture"]}; leave --model out')
        else:
            model = timm.create_model(cfg.model, pretrained=cfg.pretrained, **build)
        if saved.get('pretrained_cfg'):  # feed the model as it was trained unless told otherwise
            spec.img_size = cfg.img_size or saved['pretrained_cfg']['input_size'][-1]
        data_config = data_config_for(cfg, model, spec)
        precision = resolve_precision(cfg.amp, cfg.amp_dtype, cfg.channels_last, info.device)
        if info.primary:
            print(f'precision: {precision.describe()}', flush=True)
        model.to(info.device)
        if precision.channels_last:
            model.to(memory_format=torch.channels_last)
        loader = build_eval_loader(cfg, data_config, info.rank, info.world_size, info.device)
        result = evaluate(compile_model(model, cfg), loader, info.device, precision.autocast(info.device),
                          precision.channels_last, progress=info.primary and cfg.progress)
        split = 'test' if cfg.dataset in ('fashion_mnist', 'cifar10', 'cifar100') else cfg.val_split
        result = {'model': cfg.model, 'checkpoint': str(weights) if weights else None, 'dataset': cfg.dataset,
                  'split': split, 'precision': precision.as_dict(), **result}
        if info.primary:
            out = Path(cfg.results_file) if cfg.results_file else \
                (weights.parent if weights else Path('.')) / f'validate-{cfg.dataset.replace("/", "_")}.json'
            save_json_file(result, out)
            print(json.dumps(result, indent=2))
            print(f'result written to {out}')
        return result
    finally:
        cleanup_distributed()
