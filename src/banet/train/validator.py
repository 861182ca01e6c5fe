"""``validate(args)``: top-1/top-5, loss and images/s of a checkpoint or a registered model on a dataset."""
import json
from pathlib import Path
from typing import Any, Dict

import timm
import torch

from ..checkpoint import load_state_dict_file, save_json_file
from .data import build_loader
from .distributed import cleanup_distributed, init_distributed
from .engine import evaluate
from .state import CONFIG, resolve_weights
from .trainer import autocast_for, check_args, data_config_for

__all__ = ['validate']


def _checkpoint_config(weights: Path) -> Dict[str, Any]:
    """The config.json beside a weights file (empty when there is none)."""
    file = weights.parent / CONFIG
    return json.loads(file.read_text()) if file.is_file() else {}


def validate(args: Any) -> Dict[str, Any]:
    """Evaluate; the model comes from ``--checkpoint``'s config.json unless ``--model`` names it."""
    weights = resolve_weights(Path(args.checkpoint), args.use_ema) if args.checkpoint else None
    if args.use_ema and weights is None:
        raise ValueError('--use-ema needs --checkpoint (a run folder trained with --model-ema)')
    saved = _checkpoint_config(weights) if weights else {}
    args.model = args.model or saved.get('architecture')
    if not args.model:
        raise ValueError('give --model NAME, or --checkpoint a run folder (its config.json names the model)')
    spec = check_args(args, [args.val_split])
    if args.threads:
        torch.set_num_threads(args.threads)
    info = init_distributed(args.device)
    try:
        if weights is None and not args.pretrained and info.primary:
            print(f'note: no --checkpoint or --pretrained: evaluating a randomly initialised {args.model}')
        model = timm.create_model(
            args.model, pretrained=args.pretrained and weights is None,
            num_classes=args.num_classes or saved.get('num_classes') or spec.num_classes,
            in_chans=args.in_chans or saved.get('in_chans') or spec.in_chans)
        if weights is not None:
            model.load_state_dict(load_state_dict_file(weights, args.trust_pickle))
        if saved.get('pretrained_cfg'):  # feed the model as it was trained unless told otherwise
            model.pretrained_cfg = {**model.pretrained_cfg, **saved['pretrained_cfg']}
            spec.img_size = args.img_size or saved['pretrained_cfg']['input_size'][-1]
        data_config = data_config_for(args, model, spec)
        model.to(info.device)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        net = torch.compile(model, backend=args.torchcompile) if args.torchcompile else model
        loader = build_loader(args, data_config, False, info.rank, info.world_size, info.device)
        result = evaluate(net, loader, info.device, autocast_for(args, info.device), args.channels_last,
                          progress=info.primary and not args.no_progress)
        result = {'model': args.model, 'checkpoint': str(weights) if weights else None, 'dataset': args.dataset,
                  'split': 'test' if args.dataset != 'folder' else args.val_split, **result}
        if info.primary:
            out = Path(args.results_file) if args.results_file else \
                (weights.parent if weights else Path('.')) / f'validate-{args.dataset}.json'
            save_json_file(result, out)
            print(json.dumps(result, indent=2))
            print(f'result written to {out}')
        return result
    finally:
        cleanup_distributed()
