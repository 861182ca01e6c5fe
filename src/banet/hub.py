"""Saving and loading model folders in the layout of timm's ``local-dir:`` source.

A folder holds ``model.safetensors`` and a ``config.json`` (``architecture``, ``num_classes``, ``model_args``,
``label_names`` and the ``pretrained_cfg`` that preprocessing reads), so that after ``import banet``::

    model = timm.create_model('local-dir:DIR', pretrained=True)

rebuilds the model and loads its weights. The checkpoint folders of ``banet train`` (``best/``, ``last/``) use the
same :func:`model_config`. :func:`load_pretrained` loads such a folder with checks and one clear error for each way
it can be broken (missing or corrupt file, unknown model, pickle weights, weights that do not fit).
"""
import difflib
import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import timm
from timm.data import resolve_data_config
from timm.utils import unwrap_model
from torch import nn

from .checkpoint import PathLike, load_state_dict_file, save_json_file, save_state_dict_file
from .layers import FusedBridgeAttention

__all__ = ['CONFIG', 'WEIGHTS', 'EMA_WEIGHTS', 'model_config', 'per_channel_norm', 'save_pretrained', 'load_pretrained',
           'checkpoint_folder', 'create_or_load', 'input_channels', 'label_names_of', 'model_data_config']

WEIGHTS, EMA_WEIGHTS, CONFIG = 'model.safetensors', 'model_ema.safetensors', 'config.json'
_PICKLE_SUFFIXES = ('.pth', '.pt', '.bin', '.tar', '.pkl')
# pretrained_cfg fields that say where the source weights came from; a saved folder is its own source.
_SOURCE_KEYS = ('url', 'hf_hub_id', 'hf_hub_filename', 'hf_hub_revision', 'file', 'source', 'state_dict', 'tag',
                'architecture', 'label_offset')


def input_channels(model: nn.Module) -> int:
    """Input channels, read from the first convolution the model's cfg names (else its ``in_chans``)."""
    first = model.pretrained_cfg.get('first_conv')
    for name in ([first] if isinstance(first, str) else list(first or [])):
        try:
            return model.get_submodule(name).in_channels
        except AttributeError:
            pass
    if hasattr(model, 'in_chans'):
        return int(model.in_chans)
    return model.pretrained_cfg.get('input_size', (3,))[0]


def model_data_config(model: nn.Module) -> Dict[str, Any]:
    """timm's eval data config of ``model`` with the channels it really takes (one mean/std value per channel)."""
    in_chans = input_channels(model)
    cfg = resolve_data_config({}, model=model)
    cfg['input_size'] = (in_chans, *cfg['input_size'][1:])
    return per_channel_norm(cfg, in_chans)


def per_channel_norm(cfg: Dict[str, Any], in_chans: int) -> Dict[str, Any]:
    """Give a data config one mean/std value per input channel (a 3-channel default for a 1-channel model is
    averaged); returns ``cfg``, changed in place."""
    for key in ('mean', 'std'):
        if len(cfg[key]) != in_chans:
            cfg[key] = (sum(cfg[key]) / len(cfg[key]),) * in_chans
    return cfg


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def model_config(
        model: nn.Module,
        data_config: Optional[Dict[str, Any]] = None,
        label_names: Optional[Sequence[str]] = None,
        **extra: Any,
) -> Dict[str, Any]:
    """The ``config.json`` of ``model``: what timm's ``local-dir:`` loader needs to rebuild and feed it.

    Args:
        model: a model made by ``timm.create_model`` (its ``pretrained_cfg`` names the architecture).
        data_config: preprocessing it was trained with (timm's data config); default: the model's own.
        label_names: one name per class; default: the model's, when its class count is unchanged.
        extra: more top-level fields (e.g. ``epoch``, ``metrics``); timm ignores them.
    """
    model = unwrap_model(model)
    source = dict(getattr(model, 'pretrained_cfg', None) or {})
    architecture = source.get('architecture')
    if not architecture:
        raise ValueError('the model has no pretrained_cfg["architecture"]: build it with timm.create_model(NAME) '
                         'so that the saved folder can name the model to rebuild')
    num_classes = model.num_classes
    if label_names is None and source.get('num_classes') == num_classes:
        label_names = source.get('label_names')
    if label_names is not None:
        label_names = [str(n) for n in label_names]
        if len(label_names) != num_classes:
            raise ValueError(f'{len(label_names)} label names for a model with {num_classes} classes')
    pretrained_cfg = {k: _jsonable(v) for k, v in source.items()
                      if k not in _SOURCE_KEYS and k not in ('label_names', 'label_descriptions') and v is not None}
    data = model_data_config(model) if data_config is None else data_config
    if tuple(data['input_size'][1:]) != tuple(source.get('input_size', (0, 0, 0))[1:]):
        pretrained_cfg.pop('pool_size', None)  # the final feature map size changes with the input size
    pretrained_cfg.update({k: _jsonable(v) for k, v in data.items() if v is not None})
    in_chans = input_channels(model)
    if pretrained_cfg['input_size'][0] != in_chans:
        raise ValueError(f'the data config gives {pretrained_cfg["input_size"][0]}-channel input to a model that '
                         f'takes {in_chans} channels')
    pretrained_cfg.update(num_classes=num_classes, custom_load=False)
    # the construction arguments timm's create_model recorded, less the drop rates (they only matter in training)
    model_args = {k: v for k, v in getattr(model, '_model_args', {}).items() if 'drop' not in k}
    model_args.update(num_classes=num_classes, in_chans=in_chans)
    for key, value in model_args.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as e:
            raise ValueError(f'model argument {key}={value!r} cannot be saved in config.json') from e
    config = {'architecture': architecture, 'num_classes': num_classes, 'in_chans': in_chans,
              'num_features': getattr(model, 'num_features', None), 'model_args': model_args}
    if label_names is not None:
        config['label_names'] = label_names
    config['pretrained_cfg'] = pretrained_cfg
    config.update(extra)
    return config


def save_pretrained(
        model: nn.Module,
        directory: PathLike,
        data_config: Optional[Dict[str, Any]] = None,
        label_names: Optional[Sequence[str]] = None,
        **extra: Any,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (each atomically); returns the folder.

    ``timm.create_model(f'local-dir:{directory}', pretrained=True)`` (after ``import banet``) or
    :func:`load_pretrained` restores the model. Save the model before :func:`banet.fuse`, not after.
    """
    model = unwrap_model(model)
    if any(isinstance(m, FusedBridgeAttention) for m in model.modules()):
        raise ValueError('the model is fused (banet.fuse): save the unfused model and fuse it after loading')
    config = model_config(model, data_config, label_names, **extra)
    directory = Path(directory)
    save_state_dict_file(model.state_dict(), directory / WEIGHTS)
    save_json_file(config, directory / CONFIG)
    return directory


def checkpoint_folder(path: PathLike) -> Path:
    """The folder holding ``config.json``: ``path`` itself, or a run folder's ``best/`` (else ``last/``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'no such checkpoint folder: {path}')
    if not path.is_dir():
        raise ValueError(f'{path} is a file; give the folder holding {CONFIG} and {WEIGHTS} '
                         '(written by banet.save_pretrained or banet train)')
    for folder in (path, path / 'best', path / 'last'):
        if (folder / CONFIG).is_file():
            return folder
    raise FileNotFoundError(f'{path} holds no {CONFIG} (nor best/ or last/): give a folder written by '
                            'banet.save_pretrained or a banet train run folder')


def _read_config(folder: Path) -> Dict[str, Any]:
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f'{folder / CONFIG} is not valid JSON ({e}); save the model again') from e
    if not isinstance(config, dict) or not isinstance(config.get('architecture'), str):
        raise ValueError(f'{folder / CONFIG} does not name an "architecture"; it is not a model config')
    name = config['architecture']
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f' (close: {", ".join(close)})' if close else ''
        raise ValueError(f'{folder / CONFIG} names the unknown model {name!r}{hint}: import the package that '
                         'registers it (import banet), or fix "architecture"')
    return config


def _weights_file(folder: Path, use_ema: bool, trust_pickle: bool) -> Path:
    name = EMA_WEIGHTS if use_ema else WEIGHTS
    if (folder / name).is_file():
        return folder / name
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES and p.is_file())
    if pickles and not use_ema:
        if trust_pickle:
            return folder / pickles[0]
        raise ValueError(f'{folder} has no {WEIGHTS}, only the pickle {pickles[0]}; only safetensors are loaded '
                         f'by default. Convert it with save_pretrained, or pass --trust-pickle (trust_pickle=True) '
                         'if you trust its source')
    hint = ' (was the run trained with --model-ema?)' if use_ema else ''
    raise FileNotFoundError(f'{folder} has {CONFIG} but no {name}{hint}')


def load_pretrained(path: PathLike, use_ema: bool = False, trust_pickle: bool = False) -> nn.Module:
    """Rebuild and load the model of a folder written by :func:`save_pretrained` or ``banet train``.

    ``path`` may be a run folder (its ``best/``, else ``last/``, is used). The model is built through timm's
    ``local-dir:`` source, so ``model.pretrained_cfg`` carries the saved preprocessing and ``label_names``;
    it is returned in eval mode.
    """
    folder = checkpoint_folder(path)
    config = _read_config(folder)
    weights = _weights_file(folder, use_ema, trust_pickle)
    state_dict = load_state_dict_file(weights, trust_pickle=trust_pickle)
    model = timm.create_model(f'local-dir:{folder}', pretrained=False)
    expected = model.state_dict()
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & state_dict.keys() if expected[k].shape != state_dict[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f'{weights} does not fit {config["architecture"]} as {folder / CONFIG} describes it '
            f'(num_classes {model.num_classes}, in_chans {input_channels(model)}): missing {missing[:3]}, '
            f'unexpected {unexpected[:3]}, wrong shape {wrong[:3]}')
    model.load_state_dict(state_dict)
    return model.eval()


def create_or_load(model: Optional[str] = None, checkpoint: Optional[PathLike] = None,
                   use_ema: bool = False, trust_pickle: bool = False) -> nn.Module:
    """The model a command works on, in eval mode: a checkpoint folder, or a registered name (random weights).

    ``model`` may itself be a folder (or ``local-dir:FOLDER``); with ``checkpoint``, a name must match the
    checkpoint's architecture.
    """
    if model and model.startswith('local-dir:'):
        model, checkpoint = None, checkpoint or model[len('local-dir:'):]
    elif model and checkpoint is None and (Path(model).is_dir() or any(c in model for c in '/\\')):
        model, checkpoint = None, model
    if checkpoint is not None:
        net = load_pretrained(checkpoint, use_ema, trust_pickle)
        if model and model != net.pretrained_cfg.get('architecture'):
            raise ValueError(f'--model {model} does not match the checkpoint\'s architecture '
                             f'{net.pretrained_cfg.get("architecture")}; leave --model out')
        return net
    if not model:
        raise ValueError('give --model NAME or a checkpoint folder')
    if not timm.is_model(model):
        close = difflib.get_close_matches(model, timm.list_models(), n=3)
        raise ValueError(f'unknown model {model!r}' + (f' (close: {", ".join(close)})' if close else '')
                         + '; or give a checkpoint folder')
    return timm.create_model(model).eval()


def label_names_of(model: nn.Module) -> Optional[list]:
    """The class names a saved folder carried (``None`` when it had none or their count does not fit)."""
    names = model.pretrained_cfg.get('label_names')
    if isinstance(names, dict):  # timm allows {index: name}
        names = [names.get(str(i), names.get(i, str(i))) for i in range(model.num_classes)]
    return list(names) if names is not None and len(names) == model.num_classes else None

