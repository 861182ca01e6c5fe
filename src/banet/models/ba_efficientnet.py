"""BA-EfficientNet: timm's EfficientNet with bridge attention in place of SE, as BAv1's official EfficientNet.

BAv1: "BA-Net: Bridge Attention for Deep Convolutional Neural Networks" (ECCV 2022);
BAv2: "BA-Net: Bridge Attention in Deep Neural Networks" (arXiv:2410.07860);
EfficientNet: "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks" (ICML 2019).

Every inverted residual (expansion ratio != 1; all of them have SE) gets a bridge over GAP(swish(bn(expand))) and
GAP(swish(bn(depthwise))) that gates the depthwise output where SE sat, with a sigmoid gate, swish inside and hidden
width mid // 6 (mid: the expanded width) — the official placement. The first stage's depthwise-separable blocks (no
expansion) keep their SE. ``ba_version='v1'`` gives BAv1's sum fusion (the official model).
"""
from typing import Any

from torch import nn

from timm.models import generate_default_cfgs, register_model
from timm.models.efficientnet import EfficientNet, _gen_efficientnet

from ._bridging import base_cfg, build_then_bridge
from ._mbconv import bridge_inverted_residuals

__all__ = ['create_ba_efficientnet']

# (channel multiplier, depth multiplier) of the EfficientNet scales
_SCALES = {'b0': (1.0, 1.0), 'b1': (1.0, 1.1), 'b2': (1.1, 1.2), 'b3': (1.2, 1.4)}


def create_ba_efficientnet(variant: str, scale: str, pretrained: bool = False, **kwargs: Any) -> EfficientNet:
    """Build a BA-EfficientNet of ``scale`` ('b0'..'b3') with timm's builder; ``ba_version``, ``ba_reduction``
    pick the bridge, other keywords go to timm's EfficientNet."""
    if scale not in _SCALES:
        raise ValueError(f'unknown EfficientNet scale {scale!r}: use one of {tuple(_SCALES)}')
    version, reduction = kwargs.pop('ba_version', 'v2'), kwargs.pop('ba_reduction', 6)
    channel_multiplier, depth_multiplier = _SCALES[scale]

    def add_bridges(model: nn.Module) -> None:
        bridge_inverted_residuals(model, version, reduction, gate_layer='sigmoid', gate_before_act=False)

    return build_then_bridge(
        _gen_efficientnet, variant, pretrained, add_bridges,
        channel_multiplier=channel_multiplier, depth_multiplier=depth_multiplier, **kwargs)


_BAV2 = 'arXiv:2410.07860'
default_cfgs = generate_default_cfgs({
    f'ba_efficientnet_{s}': base_cfg(f'efficientnet_{s}', paper_ids=_BAV2) for s in _SCALES
})


@register_model
def ba_efficientnet_b0(pretrained: bool = False, **kwargs) -> EfficientNet:
    """BAv2 EfficientNet-B0 (``ba_version='v1'``: BAv1's official model)."""
    return create_ba_efficientnet('ba_efficientnet_b0', 'b0', pretrained, **kwargs)


@register_model
def ba_efficientnet_b1(pretrained: bool = False, **kwargs) -> EfficientNet:
    """BAv2 EfficientNet-B1."""
    return create_ba_efficientnet('ba_efficientnet_b1', 'b1', pretrained, **kwargs)


@register_model
def ba_efficientnet_b2(pretrained: bool = False, **kwargs) -> EfficientNet:
    """BAv2 EfficientNet-B2."""
    return create_ba_efficientnet('ba_efficientnet_b2', 'b2', pretrained, **kwargs)


@register_model
def ba_efficientnet_b3(pretrained: bool = False, **kwargs) -> EfficientNet:
    """BAv2 EfficientNet-B3."""
    return create_ba_efficientnet('ba_efficientnet_b3', 'b3', pretrained, **kwargs)
