"""The model options shared by ``export``, ``predict`` and ``inspect``."""
import argparse
import sys

import torch
from torch import nn

from ..hub import create_or_load


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--model', default=None,
                   help='a checkpoint folder (banet.save_pretrained or a banet train run folder: best/ is used) '
                        'or a registered model name (random weights unless --checkpoint is given)')
    p.add_argument('--checkpoint', default=None,
                   help='checkpoint folder for --model NAME (model.safetensors + config.json)')
    p.add_argument('--use-ema', action='store_true', help='load model_ema.safetensors instead of model.safetensors')
    p.add_argument('--trust-pickle', action='store_true',
                   help='allow pickle weights (.pth/.bin) when the folder has no safetensors (only if you trust it)')
    p.add_argument('--threads', type=int, default=None, help='CPU threads for PyTorch (default: its own choice)')


def model_from_args(args: argparse.Namespace) -> nn.Module:
    """The model the options name, in eval mode; a note on stderr when it has random weights."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model = create_or_load(args.model, args.checkpoint, args.use_ema, args.trust_pickle)
    if model.pretrained_cfg.get('source') != 'local-dir':
        print(f'note: {args.model} has random weights (give a checkpoint folder to use trained ones)',
              file=sys.stderr)
    return model
