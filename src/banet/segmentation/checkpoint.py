"""The ``config.json`` of a segmentation checkpoint, and the segmenter it rebuilds through banet's one loader."""
from typing import Any, Dict, Mapping

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from ..errors import BanetError
from ..io import Checkpoint, PathLike, read_checkpoint
from .builders import create_segmenter

__all__ = ['TASK', 'normalisation', 'segmenter_config', 'segmenter_from', 'load_segmenter']

TASK = 'segmentation'
_BUILD_KEYS = ('arch', 'backbone', 'output_stride', 'aux', 'norm', 'trainable_layers')


def normalisation(backbone: str) -> tuple[list[float], list[float]]:
    """The mean and std of the backbone's pretrained config (ImageNet's for models without one)."""
    pretrained = timm.get_pretrained_cfg(backbone)
    mean = pretrained.mean if pretrained else IMAGENET_DEFAULT_MEAN
    std = pretrained.std if pretrained else IMAGENET_DEFAULT_STD
    return list(mean), list(std)


def segmenter_config(cfg: Any, num_classes: int, categories: Mapping[int, str], **extra: Any) -> Dict[str, Any]:
    """The ``config.json`` of a segmentation checkpoint: the task, what rebuilds the segmenter (``cfg``'s build
    options, e.g. a :class:`~banet.segmentation.SegmentTrainConfig`, and its backbone's ``model_kwargs``), how its
    input is prepared (evaluation size, normalisation) and the category names."""
    mean, std = normalisation(cfg.backbone)
    build = {k: getattr(cfg, k) for k in _BUILD_KEYS} | {'num_classes': num_classes}
    if getattr(cfg, 'model_kwargs', None):
        build['backbone_kwargs'] = dict(cfg.model_kwargs)
    return {'task': TASK, 'segmenter': build,
            'input': {'base_size': cfg.base_size, 'mean': mean, 'std': std},
            'categories': {str(k): v for k, v in categories.items()}, **extra}


def segmenter_from(ckpt: Checkpoint) -> nn.Module:
    """The segmenter a segmentation :class:`~banet.io.Checkpoint` describes, with its weights, in eval mode;
    ``model.num_classes``, ``model.categories`` (category id to name) and ``model.input_config`` (``base_size``,
    ``mean``, ``std``) describe it."""
    build, prepare = ckpt.config.get('segmenter'), ckpt.config.get('input')
    if not isinstance(build, dict) or not isinstance(prepare, dict):
        raise BanetError(f'{ckpt.file.parent / "config.json"} lacks the "segmenter" build options or the "input" '
                         'preparation; train it again')
    model = create_segmenter(**build)
    model.load_state_dict(ckpt.state_dict)
    model.num_classes = build['num_classes']
    model.categories = {int(k): v for k, v in ckpt.config.get('categories', {}).items()}
    model.input_config = prepare
    return model.eval()


def load_segmenter(source: PathLike, use_ema: bool = False, trust_pickle: bool = False) -> nn.Module:
    """The segmenter of a ``banet segment train`` run or checkpoint folder (resolved as
    :func:`banet.io.find_checkpoint` does), in eval mode; another task's checkpoint is one clear BanetError."""
    return segmenter_from(read_checkpoint(source, use_ema, trust_pickle, task=TASK))
