"""``banet validate``: accuracy, loss and throughput of a checkpoint or registered model on a dataset."""
import argparse

from ..train.config import ConfigArgumentParser, add_validate_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'validate', help='top-1/top-5, loss and images/s of a checkpoint on a dataset',
        description='Evaluate a run folder, a checkpoint folder or a weights file (with --model) on the '
                    'validation/test split of a dataset, and write the result as JSON.')
    p.__class__ = ConfigArgumentParser
    add_validate_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..train import validate
    validate(args)
    return 0
