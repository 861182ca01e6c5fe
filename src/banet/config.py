"""Typed options: dataclass fields are the one source of every option's name, type, default, help and kind.

A config class is a dataclass whose fields are made with :func:`option`. From it come

* the command line (``banet.cli._options``, which holds the argparse binding): ``--batch-size`` for
  ``batch_size``, every on/off option with its ``--no-`` form, so a command line can override a config file both
  ways;
* the YAML keys of ``-c FILE.yaml`` (:func:`from_mapping`): the field names, checked and converted;
* the recipe of a run (:func:`values_of_kind`): each field's ``kind`` says whether it changes what a run computes
  (``recipe``), only where and how fast it runs (``machine``), or names the run (``run``).

Values are layered: the dataclass defaults, then config files (:func:`layered`), then the command line.
Nothing here knows argparse.
"""
import dataclasses
import typing
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Type, TypeVar, Union

import yaml

from .errors import BanetError, MissingFileError

__all__ = ['KINDS', 'AUTO', 'Switch', 'parse_switch', 'parse_key_values', 'option', 'option_fields', 'field_type',
           'default_of', 'is_switch', 'is_mapping', 'from_mapping', 'layered', 'values_of_kind', 'read_yaml_mapping',
           'config_dict']

KINDS = ('recipe', 'machine', 'run')
AUTO = 'auto'
#: an on/off option that may also be left to banet (``'auto'``): ``True``, ``False`` or ``'auto'``
Switch = Union[bool, str]

C = TypeVar('C')


def option(default: Any, help: str, kind: str = 'recipe', *, flags: Sequence[str] = (),
           choices: Optional[Sequence[Any]] = None, metavar: Optional[str] = None, group: Optional[str] = None,
           cli: bool = True, parse: Optional[Any] = None) -> Any:
    """A dataclass field with its command-line help and kind (``recipe``, ``machine`` or ``run``).

    ``flags``: extra short flags (``-b``); ``group``: the ``--help`` section; ``cli=False``: YAML/Python only;
    ``parse``: the command line's type function (a ValueError's message is shown for a bad value).
    """
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
    meta = dict(help=help, kind=kind, flags=tuple(flags), choices=choices, metavar=metavar, group=group, cli=cli,
                parse=parse)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def option_fields(cls: type) -> List[dataclasses.Field]:
    """The fields of ``cls`` made with :func:`option`, in order."""
    return [f for f in dataclasses.fields(cls) if 'kind' in f.metadata]


_fields = option_fields


def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def field_type(tp: Any) -> Any:
    """``Optional[X]`` -> X; other types unchanged."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is Union and len(args) == 1:
        return args[0]
    return tp


_base = field_type


def is_switch(tp: Any) -> bool:
    """Whether field type ``tp`` is a :data:`Switch` (on, off or auto)."""
    return field_type(tp) == Switch


_is_switch = is_switch


def is_mapping(tp: Any) -> bool:
    """Whether field type ``tp`` is a mapping (``Dict[str, Any]``, e.g. ``model_kwargs``)."""
    return typing.get_origin(field_type(tp)) is dict


def parse_switch(text: Any) -> Switch:
    """``auto``, or a boolean from ``true/false/yes/no/on/off/1/0``; ValueError otherwise."""
    value = str(text).lower()
    if value in ('auto',):
        return AUTO
    if value in ('1', 'true', 'yes', 'on'):
        return True
    if value in ('0', 'false', 'no', 'off'):
        return False
    raise ValueError(f'use auto, true or false (got {text!r})')


def parse_key_values(items: Iterable[str]) -> Dict[str, Any]:
    """``['ba_reduction=8', 'ba_version=v1']`` as ``{'ba_reduction': 8, 'ba_version': 'v1'}`` (values read as
    YAML scalars); ValueError for an item without ``=``."""
    out = {}
    for item in items:
        key, sep, value = str(item).partition('=')
        if not sep or not key:
            raise ValueError(f'expected KEY=VALUE, got {item!r}')
        out[key.replace('-', '_')] = yaml.safe_load(value) if value else ''
    return out


def default_of(f: dataclasses.Field) -> Any:
    """The default value of field ``f`` (a fresh one for list/dict defaults)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _coerce(name: str, tp: Any, value: Any, where: str) -> Any:
    """``value`` (from YAML or Python) as field type ``tp``; a BanetError naming ``where`` and the key if it is not."""
    if value is None:
        if typing.get_origin(tp) is Union and type(None) in typing.get_args(tp):
            return None
        raise BanetError(f'{where}: {name} must not be empty')
    base = _base(tp)
    try:
        if _is_switch(tp):
            return value if isinstance(value, bool) else parse_switch(value)
        if base is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if base is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
            return value
        if base is float:  # YAML 1.1 reads 1e-3 (no dot) as a string
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise TypeError
            return float(value)
        if base is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise TypeError
            return str(value)
        if typing.get_origin(base) is dict:
            if isinstance(value, (list, tuple)):  # KEY=VALUE items, as on the command line
                return parse_key_values(value)
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise TypeError
            return dict(value)
        if typing.get_origin(base) in (list, tuple):
            item = typing.get_args(base)[0]
            values = value if isinstance(value, (list, tuple)) else [value]
            return [_coerce(name, item, v, where) for v in values]
    except (TypeError, ValueError):
        shown = 'auto|true|false' if _is_switch(tp) else 'KEY: VALUE mapping' if is_mapping(tp) else \
            getattr(base, '__name__', str(base))
        raise BanetError(f'{where}: argument --{name.replace("_", "-")}: invalid {shown} value: {value!r}') from None
    return value


def from_mapping(cls: Type[C], values: Mapping[str, Any], where: str = 'config') -> Dict[str, Any]:
    """Check and convert a mapping of field values (YAML keys may use ``-``); unknown keys name the options."""
    hints = _hints(cls)
    names = {f.name for f in _fields(cls)}
    values = {str(k).replace('-', '_'): v for k, v in values.items()}
    unknown = sorted(set(values) - names)
    if unknown:
        raise BanetError(f'{where}: unknown key(s) {unknown}; keys are option names such as batch_size or '
                         'warmup_epochs (see --help)')
    out = {}
    for k, v in values.items():
        out[k] = _coerce(k, hints[k], v, where)
        choices = next(f.metadata['choices'] for f in _fields(cls) if f.name == k)
        if choices and out[k] is not None and out[k] not in choices:
            raise BanetError(f'{where}: {k} must be one of {list(choices)}, got {out[k]!r}')
    return out


def read_yaml_mapping(path: Union[str, Path], what: str, expected: str) -> Dict[str, Any]:
    """The mapping in YAML file ``path``, or one clear error naming ``what`` the file is and what it should hold."""
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f'{what} {path} does not exist')
    try:
        values = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as e:
        raise BanetError(f'{what} {path} is not valid YAML: {" ".join(str(e).split())}') from None
    if not isinstance(values, dict):
        raise BanetError(f'{what} {path} must hold a mapping {expected}')
    return values


def layered(cls: Type[C], files: Sequence[Union[str, Path]] = (), base: Optional[Mapping[str, Any]] = None,
            given: Optional[Mapping[str, Any]] = None) -> C:
    """``cls`` from its defaults, then ``base``, then each YAML file in order, then ``given`` (e.g. the options of
    a command line)."""
    values: Dict[str, Any] = dict(base or {})
    for file in files:
        values.update(from_mapping(cls, read_yaml_mapping(file, 'config file', 'of option: value'),
                                   f'config file {file}'))
    names = {f.name for f in _fields(cls)}
    values.update({k: v for k, v in (given or {}).items() if k in names})
    return cls(**values)


def values_of_kind(config: Any, kind: str) -> Dict[str, Any]:
    """The fields of one kind (``recipe``, ``machine`` or ``run``) of a config object, by name."""
    return {f.name: getattr(config, f.name) for f in _fields(type(config)) if f.metadata['kind'] == kind}


def config_dict(config: Any) -> Dict[str, Any]:
    """Every option of a config object as plain YAML/JSON values (what a run saves)."""
    return {f.name: _plain(getattr(config, f.name)) for f in _fields(type(config))}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
