"""BA-MobileNetV3: timm's MobileNetV3 with bridge attention in place of SE, as BAv1's official MobileNetV3.

BAv1: "BA-Net: Bridge Attention for Deep Convolutional Neural Networks" (ECCV 2022);
BAv2: "BA-Net: Bridge Attention in Deep Neural Networks" (arXiv:2410.07860);
MobileNetV3: "Searching for MobileNetV3" (ICCV 2019).

Every inverted residual with SE gets a bridge over GAP(act(bn(expand))) and GAP(bn(depthwise)) that gates the
depthwise output *before* its activation, with a hard-sigmoid gate, ReLU inside and hidden width mid // 6 (mid: the
expanded width) — the official placement. The SE of the stem-side depthwise-separable block (no expansion) stays.
``ba_version='v1'`` gives BAv1's sum fusion (the official model), ``ba_reduction`` another hidden width.
"""
from typing import Any

from torch import nn

from timm.models import generate_default_cfgs, register_model
from timm.models.mobilenetv3 import MobileNetV3, _gen_mobilenet_v3

from ._bridging import base_cfg, build_then_bridge
from ._mbconv import bridge_inverted_residuals

def _create(variant: str, pretrained: bool, **kwargs: Any) -> MobileNetV3:
    version, reduction = kwargs.pop('ba_version', 'v2'), kwargs.pop('ba_reduction', 6)

    def add_bridges(model: nn.Module) -> None:
        bridge_inverted_residuals(
            model, version, reduction, act_layer=nn.ReLU, gate_layer='hard_sigmoid', gate_before_act=True)

    return build_then_bridge(_gen_mobilenet_v3, variant, pretrained, add_bridges, **kwargs)


_BAV2 = 'arXiv:2410.07860'
default_cfgs = generate_default_cfgs({
    'ba_mobilenetv3_large_100': base_cfg('mobilenetv3_large_100', paper_ids=_BAV2),
    'ba_mobilenetv3_small_100': base_cfg('mobilenetv3_small_100', paper_ids=_BAV2),
})


@register_model
def ba_mobilenetv3_large_100(pretrained: bool = False, **kwargs) -> MobileNetV3:
    """BAv2 MobileNetV3-Large 1.0 (``ba_version='v1'``: BAv1's official model)."""
    return _create('ba_mobilenetv3_large_100', pretrained, channel_multiplier=1.0, **kwargs)


@register_model
def ba_mobilenetv3_small_100(pretrained: bool = False, **kwargs) -> MobileNetV3:
    """BAv2 MobileNetV3-Small 1.0 (``ba_version='v1'``: BAv1's official model)."""
    return _create('ba_mobilenetv3_small_100', pretrained, channel_multiplier=1.0, **kwargs)
