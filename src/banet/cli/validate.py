"""``banet validate``: accuracy, loss and throughput of a checkpoint or registered model on a dataset."""
import argparse

from ..train import ValidateConfig, validate
from ._options import add_config_options, config_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'validate', help='top-1/top-5, loss and images/s of a checkpoint on a dataset',
        description='Evaluate a run folder, a checkpoint folder, a .safetensors file or an official BA-Net '
                    'checkpoint (bare weights need --model) on the validation/test split of a dataset, and write '
                    'the result as JSON.')
    add_config_options(p, ValidateConfig)
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    validate(config_from_args(ValidateConfig, args))
    return 0
