"""Bridge attention in timm's inverted-residual (MBConv) block: shared by BA-MobileNetV3 and BA-EfficientNet.

BAv1: "BA-Net: Bridge Attention for Deep Convolutional Neural Networks" (ECCV 2022), whose code has MobileNetV3 and
EfficientNet versions; BAv2: "BA-Net: Bridge Attention in Deep Neural Networks" (arXiv:2410.07860).

In every inverted residual that has squeeze-and-excitation, the bridge takes the SE's place: it pools the expansion
output and the depthwise output and gates the depthwise output. Blocks without SE, and SE blocks without an
expansion layer (timm's ``DepthwiseSeparableConv``), are left as they are.
"""
from typing import Optional

import torch
from torch import nn

from timm.layers import LayerType
from timm.models._efficientnet_blocks import InvertedResidual

from ..layers import BridgeAttention, bridge_pool, bridged_norm, channel_gate
from ._bridging import become, bridge_blocks, device_dtype

__all__ = ['BAInvertedResidual', 'bridge_inverted_residuals']


class BAInvertedResidual(InvertedResidual):
    """timm's ``InvertedResidual`` with a bridge over its expansion and depthwise convolutions instead of SE.

    Bridged (globally average-pooled): act(bn1(conv_pw x)) and bn2(conv_dw ·) — the latter after its activation, or
    before it with ``gate_before_act`` (BAv1's MobileNetV3). The gate multiplies that same tensor, where SE sat;
    with ``gate_before_act`` the activation follows the gate. The depthwise activation is held as ``act_dw`` (taken
    out of timm's ``bn2``; no weights move). Built with :meth:`from_block`.

    With ``gate_before_act`` the gated map is bn2's output, so bn2 and the gate run as one
    :func:`~banet.layers.bridged_norm`; gated after the activation, the pool is of ``act(bn2(·))``, which the norm's
    statistics do not give, and the block pools the map itself.
    """

    @classmethod
    def from_block(
            cls,
            block: InvertedResidual,
            version: str = 'v2',
            reduction: int = 6,
            act_layer: Optional[LayerType] = None,
            gate_layer: LayerType = 'sigmoid',
            gate_before_act: bool = False,
    ) -> 'BAInvertedResidual':
        """Turn timm's block into this class in place, dropping its SE; ``act_layer`` defaults to the block's own.

        The bridge's hidden width is ``mid // reduction`` (mid: the expanded width) and it keeps PyTorch's default
        initialisation, as the official code.
        """
        if type(block) is not InvertedResidual:
            raise TypeError(f'expected timm\'s InvertedResidual, got {type(block).__name__}')
        if not hasattr(block.bn2, 'act'):
            raise ValueError(f'bn2 must be one of timm\'s norm+act layers, got {type(block.bn2).__name__}')
        mid = block.conv_dw.out_channels
        bridge = BridgeAttention(
            [block.conv_pw.out_channels, mid], mid, version=version, reduction=reduction,
            act_layer=act_layer or type(block.bn2.act), gate_layer=gate_layer, **device_dtype(block))
        block.act_dw, block.bn2.act = block.bn2.act, nn.Identity()
        block.se = nn.Identity()
        block.gate_before_act = gate_before_act
        return become(block, cls, bridge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.conv_s2d is not None:
            x = self.bn_s2d(self.conv_s2d(x))
        x = self.bn1(self.conv_pw(x))
        s1 = bridge_pool(x)
        x = self.conv_dw(x)
        if self.gate_before_act and not torch.jit.is_scripting():
            # the gated map is bn2's output itself: one bridged norm (pool from its statistics), then the activation
            x = self.act_dw(bridged_norm(x, self.bn2, self.ba, [s1]))
        else:
            x = self.bn2(x)
            if not self.gate_before_act:
                x = self.act_dw(x)
            x = channel_gate(x, self.ba([s1, bridge_pool(x)]))
            if self.gate_before_act:
                x = self.act_dw(x)
        x = self.bn3(self.conv_pwl(self.aa(x)))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


def _has_se(block: nn.Module) -> bool:
    return not isinstance(block.se, nn.Identity)


def bridge_inverted_residuals(model: nn.Module, version: str, reduction: int, **block_kwargs) -> None:
    """Replace the SE of every timm ``InvertedResidual`` in ``model`` by a bridge (see :class:`BAInvertedResidual`)."""
    bridge_blocks(
        model, InvertedResidual, BAInvertedResidual, _has_se, version=version, reduction=reduction, **block_kwargs)
