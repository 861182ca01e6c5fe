"""Inference fusion: fold each conv's BatchNorm into the conv and each bridge into one linear layer."""
from typing import List

import torch
from torch import nn
from torch.ao.quantization import fuse_modules

from ..layers import BridgeAttention

__all__ = ['fuse', 'conv_bn_pairs']


def conv_bn_pairs(model: nn.Module) -> List[List[str]]:
    """Names of (Conv2d, BatchNorm2d) pairs where the norm is registered right after the conv it normalises.

    That is the layout of timm's and torchvision's ResNets (``conv1``/``bn1`` … in blocks, ``downsample`` sequences);
    a deep stem (a Sequential ending in a conv) pairs with the ``bn1`` registered after it.
    """
    pairs = []
    for parent_name, parent in model.named_modules():
        prefix = f'{parent_name}.' if parent_name else ''
        children = list(parent.named_children())
        for (name, first), (next_name, second) in zip(children, children[1:]):
            if isinstance(first, nn.Sequential) and len(first) and isinstance(first[-1], nn.Conv2d):
                name, first = f'{name}.{len(first) - 1}', first[-1]
            if (isinstance(first, nn.Conv2d) and type(second) is nn.BatchNorm2d
                    and first.out_channels == second.num_features):
                pairs.append([prefix + name, prefix + next_name])
    return pairs


@torch.no_grad()
def fuse(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode and fuse it in place for inference; returns it.

    Conv-BN pairs (:func:`conv_bn_pairs`) become biased convs (``torch.ao.quantization.fuse_modules``) and every
    :class:`BridgeAttention` its :class:`FusedBridgeAttention`. Outputs equal the unfused eval model's up to
    floating-point rounding. Works the same on models without bridges (timm's ``resnet50``), for fair comparisons.
    """
    model.eval()
    pairs = conv_bn_pairs(model)
    if pairs:  # torch's fuse_modules fails on an empty list (e.g. timm's MobileNets: their norms are BatchNormAct2d)
        fuse_modules(model, pairs, inplace=True)
    for name, module in list(model.named_modules()):
        if isinstance(module, BridgeAttention):
            model.set_submodule(name, module.fuse())
    return model
