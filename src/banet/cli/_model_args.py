"""The model options shared by ``export``, ``predict`` and ``inspect``: one loader for every source."""
import argparse
import sys

import torch
from torch import nn

from ..io import load_model


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--model', default=None,
                   help='a checkpoint (run folder: best/ is used; checkpoint folder; .safetensors file; official '
                        'BA-Net checkpoint) or a registered model name (random weights unless --checkpoint)')
    p.add_argument('--checkpoint', default=None,
                   help='weights for --model NAME: any checkpoint --model accepts (bare weights need the name)')
    p.add_argument('--use-ema', action='store_true', help='load model_ema.safetensors instead of model.safetensors')
    p.add_argument('--trust-pickle', action='store_true',
                   help='allow pickles with Python objects (.pth/.bin) when there are no safetensors (trusted only)')
    p.add_argument('--threads', type=int, default=None, help='CPU threads for PyTorch (default: its own choice)')


def model_from_args(args: argparse.Namespace) -> nn.Module:
    """The model the options name, in eval mode; a note on stderr when it has random weights."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint, args.model, args.use_ema, args.trust_pickle)
    if args.checkpoint is None and model.pretrained_cfg.get('source') != 'local-dir':
        print(f'note: {args.model} has random weights (give a checkpoint to use trained ones)', file=sys.stderr)
    return model
