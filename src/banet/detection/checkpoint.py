"""The ``config.json`` of a detection checkpoint, and the detector it rebuilds through banet's one loader."""
from typing import Any, Dict, Mapping

from torch import nn

from ..errors import BanetError
from ..io import Checkpoint, PathLike, read_checkpoint
from .builders import create_detector

__all__ = ['TASK', 'detector_config', 'detector_from', 'load_detector']

TASK = 'detection'
_BUILD_KEYS = ('arch', 'backbone', 'num_classes', 'trainable_layers', 'norm', 'min_size', 'max_size', 'fpn_channels')


def detector_config(cfg: Any, num_classes: int, categories: Mapping[int, str], **extra: Any) -> Dict[str, Any]:
    """The ``config.json`` of a detection checkpoint: the task, what rebuilds the detector (``cfg``'s build
    options, e.g. a :class:`~banet.detection.DetectTrainConfig`, and its backbone's ``model_kwargs``) and the category
    names."""
    build = {k: getattr(cfg, k) for k in _BUILD_KEYS} | {'num_classes': num_classes}
    if getattr(cfg, 'model_kwargs', None):
        build['backbone_kwargs'] = dict(cfg.model_kwargs)
    return {'task': TASK, 'detector': build, 'categories': {str(k): v for k, v in categories.items()}, **extra}


def detector_from(ckpt: Checkpoint) -> nn.Module:
    """The detector a detection :class:`~banet.io.Checkpoint` describes, with its weights, in eval mode;
    ``model.categories`` maps category ids to names."""
    build = ckpt.config.get('detector')
    if not isinstance(build, dict):
        raise BanetError(f'{ckpt.file.parent / "config.json"} has no "detector" build options; train it again')
    model = create_detector(**build)
    model.load_state_dict(ckpt.state_dict)
    model.categories = {int(k): v for k, v in ckpt.config.get('categories', {}).items()}
    return model.eval()


def load_detector(source: PathLike, use_ema: bool = False, trust_pickle: bool = False) -> nn.Module:
    """The detector of a ``banet detect train`` run or checkpoint folder (resolved as
    :func:`banet.io.find_checkpoint` does), in eval mode; another task's checkpoint is one clear BanetError."""
    return detector_from(read_checkpoint(source, use_ema, trust_pickle, task=TASK))
