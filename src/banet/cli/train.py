"""``banet train``: train a model from options and/or a YAML config (one process, or many under torchrun)."""
import argparse

from ..train import TrainConfig, train
from ._options import add_config_options, config_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'train', help='train a model (timm recipes, DDP with torchrun, exact resume)',
        description='Train a timm/banet model on an image folder, a timm dataset (wds/, hfds/), Fashion-MNIST or '
                    'CIFAR. Options follow timm\'s train.py; -c FILE.yaml supplies values that the command line '
                    'overrides (every on/off option has a --no- form). Several processes: '
                    'torchrun --nproc-per-node N --no-python banet train ...')
    add_config_options(p, TrainConfig)
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    train(config_from_args(TrainConfig, args))
    return 0
