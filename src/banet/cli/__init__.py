"""The ``banet`` command: one sub-command per module in this package."""
import argparse
import sys
from typing import List, Optional

from . import benchmark, convert, export, inspect, predict, profile, study, train, validate

COMMANDS = [train, validate, convert, profile, benchmark, study, export, predict, inspect]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='banet', description='Bridge attention (BA-Net) models for timm: train, validate, convert, export, predict and more.')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: parse, run the sub-command, and turn expected failures into one clear message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f'banet {args.command}: error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
