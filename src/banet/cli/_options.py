"""The argparse binding of the typed configs: one option per field, ``-c FILE.yaml`` and ``--resume RUN`` layering.

The schema (:mod:`banet.config`) knows nothing of argparse; this module turns its fields into options: ``--batch-size``
for ``batch_size``, ``--no-X`` for every on/off option, ``auto|true|false`` for switches, ``KEY=VALUE ...`` for
mappings such as ``--model-kwargs ba_reduction=8 ba_version=v1``.
"""
import argparse
import typing
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Sequence, Type, TypeVar, Union

from ..config import AUTO, default_of, field_type, is_mapping, is_switch, layered, option_fields, parse_key_values, \
    parse_switch
from ..errors import BanetError
from ..runs.folder import check_resume

__all__ = ['typed', 'add_options', 'parse_config', 'add_config_options', 'config_from_args']

C = TypeVar('C')


def typed(parse: Callable[[str], Any], name: str = '') -> Callable[[str], Any]:
    """``parse`` as an argparse type: its ValueError message becomes argparse's one-line usage error."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = name or getattr(parse, '__name__', 'value')
    return convert


def _default_text(value: Any) -> str:
    if value is None or value == '' or value is False or value == {}:
        return ''
    if isinstance(value, dict):
        value = ' '.join(f'{k}={v}' for k, v in value.items())
    if isinstance(value, (list, tuple)):
        value = ' '.join(map(str, value))
    return f' (default: {value})'


class _KeyValues(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        try:
            setattr(namespace, self.dest, parse_key_values(values))
        except ValueError as e:
            parser.error(f'argument {option_string}: {e}')


def add_options(parser: argparse.ArgumentParser, cls: type, skip: Iterable[str] = ()) -> None:
    """Add one command-line option per field of ``cls`` (defaults suppressed: only given options are parsed)."""
    hints, skip, groups = typing.get_type_hints(cls), set(skip), {}
    for f in option_fields(cls):
        meta = f.metadata
        if f.name in skip or not meta['cli']:
            continue
        target = parser
        if meta['group']:
            target = groups.get(meta['group']) or groups.setdefault(meta['group'], parser.add_argument_group(
                meta['group']))
        tp, default = hints[f.name], default_of(f)
        flag = '--' + f.name.replace('_', '-')
        names = [*meta['flags'], flag]
        kw: Dict[str, Any] = dict(dest=f.name, default=argparse.SUPPRESS, help=meta['help'] + _default_text(default))
        base = field_type(tp)
        if is_switch(tp):
            kw.update(nargs='?', const=True, type=typed(parse_switch, 'switch'), metavar='auto|true|false')
            target.add_argument(*names, **kw)
            target.add_argument('--no-' + f.name.replace('_', '-'), dest=f.name, action='store_false',
                                default=argparse.SUPPRESS, help=f'turn {flag} off')
            continue
        if is_mapping(tp):
            kw.update(nargs='+', action=_KeyValues, metavar='KEY=VALUE')
        elif base is bool:
            kw.update(action=argparse.BooleanOptionalAction)
        elif typing.get_origin(base) in (list, tuple, List):
            item = typing.get_args(base)[0]
            kw.update(type=item, nargs='+', metavar=meta['metavar'] or item.__name__.upper()[0])
        else:
            kw.update(type=typed(meta['parse'], base.__name__) if meta['parse'] else base, metavar=meta['metavar'])
            if meta['choices']:
                kw.update(choices=meta['choices'])
        target.add_argument(*names, **kw)


def parse_config(cls: Type[C], namespace: argparse.Namespace, files: Sequence[Union[str, Path]] = (),
                 base: Any = None) -> C:
    """``cls`` from its defaults, then ``base``, then each YAML file in order, then the parsed command line."""
    return layered(cls, files, base, vars(namespace))


def add_config_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """``-c/--config FILE.yaml`` (repeatable, later files win) and one option per field of ``cls``."""
    parser.add_argument('-c', '--config', action='append', default=[], metavar='FILE.yaml',
                        help='YAML file of option values (repeatable); the command line overrides it')
    add_options(parser, cls)


def config_from_args(cls: Type[C], args: argparse.Namespace) -> C:
    """The config the command line describes: defaults < a resumed run's config.yaml < -c files < options
    (``--resume auto`` layers nothing: a restart repeats the same command line)."""
    files = list(args.config)
    resume = getattr(args, 'resume', None)
    if resume and resume != AUTO:
        check_resume(resume, None)  # a folder that is no run is named before the options it would have given
        files.insert(0, Path(resume) / 'config.yaml')  # the run's own options first; it keeps its own folder
    try:  # a bad config file is a usage error, reported by argparse (usage + one line, exit status 2)
        config = parse_config(cls, args, files)
    except BanetError as e:
        args.parser.error(str(e))
    config.check()
    return config
