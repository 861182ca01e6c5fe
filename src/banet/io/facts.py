"""What a model says about itself: the input channels it takes, its data config, its class names.

Facts read from the model object, not file I/O: the loader and the folder writer both use them.
"""
from typing import Any, Dict, Optional, Tuple

import torch
from timm.data import resolve_input_data_config
from timm.utils import unwrap_model
from torch import nn

__all__ = ['input_channels', 'model_data_config', 'norm_tensors', 'label_names_of']


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


def model_data_config(model: nn.Module, **overrides: Any) -> Dict[str, Any]:
    """timm's eval data config of ``model`` (``resolve_input_data_config``: the channels the model really takes, a
    3-channel mean/std averaged for a 1-channel model), with ``overrides`` (img_size, mean, std, crop_pct, ...)."""
    return resolve_input_data_config(unwrap_model(model), args=overrides)


def norm_tensors(cfg: Dict[str, Any], scale: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """A data config's mean and std as (1, C, 1, 1) float tensors, times ``scale`` (255 for uint8 pixels)."""
    return tuple(torch.tensor(cfg[k], dtype=torch.float32).view(1, -1, 1, 1) * scale for k in ('mean', 'std'))


def label_names_of(model: nn.Module) -> Optional[list]:
    """The class names a saved folder carried (``None`` when it had none or their count does not fit)."""
    names = model.pretrained_cfg.get('label_names')
    if isinstance(names, dict):  # timm allows {index: name}
        names = [names.get(str(i), names.get(i, str(i))) for i in range(model.num_classes)]
    return list(names) if names is not None and len(names) == model.num_classes else None

