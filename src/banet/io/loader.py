"""The one way to find, read and load a checkpoint, used by every command and API.

A *source* may be

* a ``banet train`` run folder (its ``best/``, else ``last/``), or one of those folders;
* a folder written by :func:`banet.save_pretrained` (timm's ``local-dir`` layout), also as ``local-dir:FOLDER``;
* a ``.safetensors`` file (its ``config.json`` beside it is used when present);
* an official BA-Net checkpoint (``.pth``/``.pth.tar``, any of the three official layouts: converted on the fly).

Weights with a ``config.json`` rebuild their own model; bare weights need a model name. Pickles load with
``torch.load(weights_only=True)`` unless the user trusts them. A ``config.json`` names its task (``"task"``:
``detection`` or ``segmentation``; none for classification), and a reader asks for the task it can use, so a
checkpoint of another task is one clear line.
"""
import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import timm
import torch
from torch import nn

from ..errors import BanetError, MissingFileError
from ..models.official import convert_official, detect_layout, unwrap_state_dict
from .facts import input_channels
from .files import PathLike, load_state_dict_file

__all__ = ['CONFIG', 'WEIGHTS', 'EMA_WEIGHTS', 'TASKS', 'Checkpoint', 'check_model_name', 'check_model_names',
           'find_checkpoint', 'read_config', 'read_checkpoint', 'load_model', 'load_weights', 'fit_report']

WEIGHTS, EMA_WEIGHTS, CONFIG = 'model.safetensors', 'model_ema.safetensors', 'config.json'
#: each task a checkpoint can belong to, and the commands that train and validate its checkpoints
TASKS = {'classification': ('banet train', 'banet validate'),
         'detection': ('banet detect train', 'banet detect validate'),
         'segmentation': ('banet segment train', 'banet segment validate')}
_PICKLE_SUFFIXES = ('.pth', '.pt', '.bin', '.tar', '.pkl')


def check_model_names(names: List[str], what: str = 'model', where: str = '') -> None:
    """One BanetError listing every name timm does not know (``what``: how the caller calls them)."""
    unknown = [n for n in names if not timm.is_model(n)]
    if unknown:
        raise BanetError(f'{where}unknown {what}(s) {unknown}: use timm model names (see timm.list_models(); '
                         'import banet registers its models)')


def check_model_name(name: str, hint: str = '') -> None:
    """A BanetError naming close registered names when timm does not know ``name``."""
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise BanetError(f'unknown model {name!r}' + (f' (close: {", ".join(close)})' if close else '')
                         + (hint or ': see timm.list_models() (import banet registers its models)'))


@dataclass
class Checkpoint:
    """Weights found for a source: the file, its ``config.json`` (if any), its layout and banet-layout tensors."""
    file: Path
    config: Optional[Dict[str, Any]]
    layout: str
    state_dict: Dict[str, torch.Tensor]

    @property
    def architecture(self) -> Optional[str]:
        return self.config.get('architecture') if self.config else None

    @property
    def task(self) -> str:
        return _task_of(self.config)


def _weights_in(folder: Path, use_ema: bool, trust_pickle: bool) -> Optional[Path]:
    name = EMA_WEIGHTS if use_ema else WEIGHTS
    if (folder / name).is_file():
        return folder / name
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES and p.is_file())
    if pickles and not use_ema:
        if trust_pickle:
            return folder / pickles[0]
        raise BanetError(f'{folder} has no {WEIGHTS}, only the pickle {pickles[0]}; only safetensors are loaded '
                         f'by default. Convert it with save_pretrained, or pass --trust-pickle (trust_pickle=True) '
                         'if you trust its source')
    return None


def find_checkpoint(source: PathLike, use_ema: bool = False, trust_pickle: bool = False) -> Tuple[Path, Optional[Path]]:
    """(weights file, its config.json or None) of a source; a run folder's ``best/`` comes before ``last/``."""
    path = Path(str(source)[len('local-dir:'):] if str(source).startswith('local-dir:') else source)
    if path.is_file():
        config = path.parent / CONFIG
        return path, config if config.is_file() and path.suffix == '.safetensors' else None
    if not path.is_dir():
        raise MissingFileError(f'no such checkpoint folder or file: {path}')
    name = EMA_WEIGHTS if use_ema else WEIGHTS
    for folder in (path, path / 'best', path / 'last'):
        if (folder / CONFIG).is_file():
            weights = _weights_in(folder, use_ema, trust_pickle)
            if weights is None:
                hint = ' (was the run trained with --model-ema?)' if use_ema else ''
                raise MissingFileError(f'{folder} has {CONFIG} but no {name}{hint}')
            return weights, folder / CONFIG
    for folder in (path, path / 'best', path / 'last'):
        if folder.is_dir():
            weights = _weights_in(folder, use_ema, trust_pickle)
            if weights is not None:
                return weights, None
    raise MissingFileError(f'{path} holds no {CONFIG} or {name} (nor best/ or last/): give a folder written by '
                           'banet.save_pretrained or a banet train run folder')


def _task_of(config: Optional[Dict[str, Any]]) -> str:
    return config.get('task', 'classification') if config else 'classification'


def _read_config(file: Path) -> Dict[str, Any]:
    try:
        config = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise BanetError(f'{file} is not valid JSON ({e}); save the model again') from None
    if not isinstance(config, dict):
        raise BanetError(f'{file} holds a JSON {type(config).__name__}, not a checkpoint config')
    task = _task_of(config)
    if task not in TASKS:
        raise BanetError(f'{file} names the unknown task {task!r} (known: {", ".join(TASKS)})')
    if task == 'classification':
        if not isinstance(config.get('architecture'), str):
            raise BanetError(f'{file} does not name an "architecture"; it is not a model config')
        check_model_name(config['architecture'], f' in {file}: import the package that registers it (import banet), '
                                                 'or fix "architecture"')
    return config


def _check_task(file: Path, found: str, task: str) -> None:
    if found != task:
        hint = ' (a classification checkpoint can initialise its backbone: backbone_checkpoint)' \
            if found == 'classification' else ''
        raise BanetError(f'{file} is not a {task} checkpoint but a {found} one (made by {TASKS[found][0]}, '
                         f'evaluated by {TASKS[found][1]}): {TASKS[task][1]} needs a {TASKS[task][0]} run '
                         f'folder{hint}')


def read_config(source: PathLike, use_ema: bool = False, trust_pickle: bool = False,
                task: Optional[str] = 'classification') -> Tuple[Path, Optional[Dict[str, Any]]]:
    """(weights file, its parsed ``config.json`` or None) of a source, checked to be a checkpoint of ``task``
    (``None``: any task). A task other than classification needs the ``config.json`` that describes the model."""
    file, config_file = find_checkpoint(source, use_ema, trust_pickle)
    config = _read_config(config_file) if config_file else None
    if task is not None:
        if config is None and task != 'classification':
            raise MissingFileError(f'{source} has no {CONFIG} beside {file.name}: a {task} checkpoint is a '
                                   f'{TASKS[task][0]} run folder (or its best/ or last/)')
        _check_task(config_file or file, _task_of(config), task)
    return file, config


def read_checkpoint(source: PathLike, use_ema: bool = False, trust_pickle: bool = False,
                    task: Optional[str] = 'classification') -> Checkpoint:
    """Find and read a source's weights, checked to belong to ``task`` (``None``: any) as :func:`read_config`
    does; official BA-Net layouts of classification weights are converted to banet's."""
    file, config = read_config(source, use_ema, trust_pickle, task)
    raw = load_state_dict_file(file, trust_pickle=trust_pickle)
    if not isinstance(raw, dict):
        raise BanetError(f'{file} holds a {type(raw).__name__}, not a state dict')
    state_dict = unwrap_state_dict(raw)
    layout = 'timm'  # no bridges: a plain timm/torchvision-named state dict
    if _task_of(config) == 'classification' and any('.ba.' in k for k in state_dict):
        layout = detect_layout(state_dict)
        state_dict = convert_official(state_dict)
    return Checkpoint(file, config, layout, state_dict)


def fit_report(model: nn.Module, state_dict: Dict[str, torch.Tensor]) -> Tuple[List[str], List[str], List[str]]:
    """(missing, unexpected, wrong-shape) keys of ``state_dict`` against ``model``'s."""
    expected = model.state_dict()
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & state_dict.keys() if expected[k].shape != state_dict[k].shape)
    return missing, unexpected, wrong


def load_weights(model: nn.Module, source: PathLike, use_ema: bool = False, trust_pickle: bool = False,
                 what: Optional[str] = None) -> Checkpoint:
    """Load a source's weights into ``model`` strictly, or raise one BanetError naming what does not fit."""
    ckpt = read_checkpoint(source, use_ema, trust_pickle)
    missing, unexpected, wrong = fit_report(model, ckpt.state_dict)
    if missing or unexpected or wrong:
        arch = what or model.pretrained_cfg.get('architecture', type(model).__name__)
        raise BanetError(f'{ckpt.file} does not fit {arch} (num_classes {getattr(model, "num_classes", "?")}): '
                         f'missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}')
    model.load_state_dict(ckpt.state_dict)
    return ckpt


def load_model(source: Optional[PathLike] = None, model: Optional[str] = None, use_ema: bool = False,
               trust_pickle: bool = False, **kwargs: Any) -> nn.Module:
    """The model a source describes, with its weights, in eval mode; or ``model`` with random weights.

    With a ``config.json`` the model is rebuilt through timm's ``local-dir:`` source (so ``pretrained_cfg`` carries
    the saved preprocessing and class names) and ``model``, if given, must match it. Bare weights (a
    ``.safetensors`` file without config, an official checkpoint) need ``model``; ``kwargs`` go to
    ``timm.create_model`` (e.g. ``num_classes``). A name that is an existing folder is taken as a source.
    """
    if model and source is None and (str(model).startswith('local-dir:') or Path(model).exists()
                                     or any(c in str(model) for c in '/\\')):
        model, source = None, model
    if source is None:
        if not model:
            raise BanetError('give a model name or a checkpoint (folder or file)')
        check_model_name(model, '; or give a checkpoint folder')
        return timm.create_model(model, **kwargs).eval()
    ckpt = read_checkpoint(source, use_ema, trust_pickle)
    if ckpt.config is not None:
        if model and model != ckpt.architecture:
            raise BanetError(f'--model {model} does not match the checkpoint\'s architecture {ckpt.architecture}; '
                             'leave --model out')
        folder = ckpt.file.parent
        net = timm.create_model(f'local-dir:{folder}', pretrained=False)
        what = f'{ckpt.architecture} as {folder / CONFIG} describes it'
    else:
        if not model:
            raise MissingFileError(f'{source} holds no {CONFIG}: give the model name too (e.g. --model ba_resnet50) '
                                   'for bare weights')
        check_model_name(model)
        classifier = timm.get_pretrained_cfg(model).to_dict().get('classifier') or 'fc'
        if 'num_classes' not in kwargs and f'{classifier}.weight' in ckpt.state_dict:
            kwargs['num_classes'] = ckpt.state_dict[f'{classifier}.weight'].shape[0]
        net, what = timm.create_model(model, **kwargs), model
    missing, unexpected, wrong = fit_report(net, ckpt.state_dict)
    if missing or unexpected or wrong:
        raise BanetError(f'{ckpt.file} does not fit {what} (num_classes {net.num_classes}, in_chans '
                         f'{input_channels(net)}): missing {missing[:3]}, unexpected {unexpected[:3]}, '
                         f'wrong shape {wrong[:3]}')
    net.load_state_dict(ckpt.state_dict)
    return net.eval()
