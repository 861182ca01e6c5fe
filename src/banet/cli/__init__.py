"""The ``banet`` command: one sub-command per module in this package, each a thin layer over the library."""
import argparse
import os
import sys
from typing import List, Optional

from ..errors import BanetError
from . import benchmark, convert, detect, export, inspect, predict, profile, segment, study, train, validate

COMMANDS = [train, validate, convert, profile, benchmark, study, export, predict, inspect, detect, segment]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='banet', description='Bridge attention (BA-Net) models for timm: train, validate, convert, export, '
                                  'predict and more.')
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of banet\'s own errors too (or set BANET_DEBUG=1)')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: parse and run the sub-command; banet's own errors print one line and exit with status 2.

    Any other exception (PyTorch's, a bug) keeps its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except BanetError as e:
        if args.debug or os.environ.get('BANET_DEBUG', '') not in ('', '0'):
            raise
        print(f'banet {args.command}: error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
