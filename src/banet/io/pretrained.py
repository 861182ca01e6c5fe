"""Saving and loading model folders in the layout of timm's ``local-dir:`` source.

A folder holds ``model.safetensors`` and a ``config.json`` (``architecture``, ``num_classes``, ``model_args``,
``label_names`` and the ``pretrained_cfg`` that preprocessing reads), so that after ``import banet``::

    model = timm.create_model('local-dir:DIR', pretrained=True)

rebuilds the model and loads its weights. The checkpoint folders of ``banet train`` (``best/``, ``last/``) use the
same :func:`model_config`. :func:`load_pretrained` loads such a folder with checks and one clear error for each way
it can be broken (missing or corrupt file, unknown model, pickle weights, weights that do not fit).
"""
import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from timm.utils import unwrap_model
from torch import nn

from ..errors import BanetError, MissingFileError
from ..layers import FusedBridgeAttention
from .facts import input_channels, model_data_config
from .files import PathLike, save_json_file, save_state_dict_file
from .loader import CONFIG, WEIGHTS, find_checkpoint, load_model

__all__ = ['model_config', 'save_pretrained', 'load_pretrained']
# pretrained_cfg fields that say where the source weights came from; a saved folder is its own source.
_SOURCE_KEYS = ('url', 'hf_hub_id', 'hf_hub_filename', 'hf_hub_revision', 'file', 'source', 'state_dict', 'tag',
                'architecture', 'label_offset')


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
        raise BanetError('the model has no pretrained_cfg["architecture"]: build it with timm.create_model(NAME) '
                         'so that the saved folder can name the model to rebuild')
    num_classes = model.num_classes
    if label_names is None and source.get('num_classes') == num_classes:
        label_names = source.get('label_names')
    if label_names is not None:
        label_names = [str(n) for n in label_names]
        if len(label_names) != num_classes:
            raise BanetError(f'{len(label_names)} label names for a model with {num_classes} classes')
    pretrained_cfg = {k: _jsonable(v) for k, v in source.items()
                      if k not in _SOURCE_KEYS and k not in ('label_names', 'label_descriptions') and v is not None}
    data = model_data_config(model) if data_config is None else data_config
    if tuple(data['input_size'][1:]) != tuple(source.get('input_size', (0, 0, 0))[1:]):
        pretrained_cfg.pop('pool_size', None)  # the final feature map size changes with the input size
    pretrained_cfg.update({k: _jsonable(v) for k, v in data.items() if v is not None})
    in_chans = input_channels(model)
    if pretrained_cfg['input_size'][0] != in_chans:
        raise BanetError(f'the data config gives {pretrained_cfg["input_size"][0]}-channel input to a model that '
                         f'takes {in_chans} channels')
    pretrained_cfg.update(num_classes=num_classes, custom_load=False)
    # the construction arguments timm's create_model recorded, less the drop rates (they only matter in training)
    model_args = {k: v for k, v in getattr(model, '_model_args', {}).items() if 'drop' not in k}
    model_args.update(num_classes=num_classes, in_chans=in_chans)
    for key, value in model_args.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as e:
            raise BanetError(f'model argument {key}={value!r} cannot be saved in config.json') from e
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
        raise BanetError('the model is fused (banet.fuse): save the unfused model and fuse it after loading')
    config = model_config(model, data_config, label_names, **extra)
    directory = Path(directory)
    save_state_dict_file(model.state_dict(), directory / WEIGHTS)
    save_json_file(config, directory / CONFIG)
    return directory


def load_pretrained(path: PathLike, use_ema: bool = False, trust_pickle: bool = False) -> nn.Module:
    """Rebuild and load the model of a folder written by :func:`save_pretrained` or ``banet train``.

    ``path`` may be a run folder (its ``best/``, else ``last/``, is used). The model is built through timm's
    ``local-dir:`` source, so ``model.pretrained_cfg`` carries the saved preprocessing and ``label_names``;
    it is returned in eval mode. :func:`banet.io.load_model` accepts bare weights and official checkpoints too.
    """
    weights, config = find_checkpoint(path, use_ema, trust_pickle)
    if config is None:
        raise MissingFileError(f'{path} holds no {CONFIG} (nor best/ or last/): give a folder written by '
                               'banet.save_pretrained or a banet train run folder')
    return load_model(path, use_ema=use_ema, trust_pickle=trust_pickle)
