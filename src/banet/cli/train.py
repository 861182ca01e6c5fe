"""``banet train``: train a model from options and/or a YAML config (one process, or many under torchrun)."""
import argparse

from ..train.config import ConfigArgumentParser, add_train_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'train', help='train a model (timm recipes, DDP with torchrun, exact resume)',
        description='Train a timm/banet model on an image folder, Fashion-MNIST or CIFAR. Options follow timm\'s '
                    'train.py; -c FILE.yaml supplies defaults that the command line overrides. Several processes: '
                    'torchrun --nproc-per-node N -m banet train ...')
    p.__class__ = ConfigArgumentParser  # reads -c/--resume config files before the rest of its command line
    add_train_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..train import train
    train(args)
    return 0
