"""Command-line options generated from the typed configs, with ``-c FILE.yaml`` and ``--resume RUN`` layering."""
import argparse
from pathlib import Path
from typing import Type, TypeVar

from ..config import add_options, parse_config
from ..errors import BanetError

C = TypeVar('C')


def add_config_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """``-c/--config FILE.yaml`` (repeatable, later files win) and one option per field of ``cls``."""
    parser.add_argument('-c', '--config', action='append', default=[], metavar='FILE.yaml',
                        help='YAML file of option values (repeatable); the command line overrides it')
    add_options(parser, cls)


def config_from_args(cls: Type[C], args: argparse.Namespace) -> C:
    """The config the command line describes: defaults < a resumed run's config.yaml < -c files < options."""
    files = list(args.config)
    resume = getattr(args, 'resume', None)
    if resume and (Path(resume) / 'config.yaml').is_file():
        files.insert(0, Path(resume) / 'config.yaml')  # the run's own options first; it keeps its own folder
    try:  # a bad config file is a usage error, reported by argparse (usage + one line, exit status 2)
        config = parse_config(cls, args, files)
    except BanetError as e:
        args.parser.error(str(e))
    config.check()
    return config
