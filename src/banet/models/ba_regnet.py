"""BA-RegNetY: timm's RegNetY with the SE of every block replaced by a bridge.

Bridge attention: BAv1 (ECCV 2022) and BAv2 ("BA-Net: Bridge Attention in Deep Neural Networks", arXiv:2410.07860);
RegNet: "Designing Network Design Spaces" (CVPR 2020).

No official BA RegNet code exists (the BAv2 authors report training RegNetY-4.0GF). A RegNet block is a ResNeXt
bottleneck, so the bridge sits as in the official BA-ResNeXt: it pools the outputs of conv1, conv2 (grouped) and conv3
(each with its norm and activation) and gates conv3's output before drop-path and the residual add; ReLU inside,
hidden width C // 16. The bridge is the block's channel attention, so RegNetY's SE (after conv2) is removed
(docs/architectures.md gives the reasons and the alternatives). Defaults to ``zero_init_last=False``, as the BA
ResNets.
"""
from typing import Optional

import torch
from torch import nn

from timm.layers import LayerType
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.regnet import Bottleneck, RegNet, model_cfgs

from ..layers import BridgeAttention, bridge_pool, bridged_norm, channel_gate
from ._bridging import BridgedModel, base_cfg, become, device_dtype

__all__ = ['BARegNetBottleneck', 'BARegNet']


class BARegNetBottleneck(Bottleneck):
    """RegNet bottleneck with a bridge over conv1, conv2 and conv3 gating conv3's output; no SE.

    conv3's norm, the gate and the residual add run as one :func:`~banet.layers.bridged_norm` (its pool taken
    from the norm's statistics in training).

    Built with :meth:`from_block`.
    """

    @classmethod
    def from_block(
            cls, block: Bottleneck, version: str = 'v2', reduction: int = 16, act_layer: Optional[LayerType] = None,
    ) -> 'BARegNetBottleneck':
        """Turn timm's block into this class in place, dropping its SE; the bridge (PyTorch's default init) uses
        the block's activation unless ``act_layer`` is given."""
        if type(block) is not Bottleneck:
            raise TypeError(f'expected timm\'s RegNet Bottleneck, got {type(block).__name__}')
        widths = [block.conv1.conv.out_channels, block.conv2.conv.out_channels, block.conv3.conv.out_channels]
        bridge = BridgeAttention(
            widths, widths[-1], version=version, reduction=reduction,
            act_layer=act_layer or type(block.conv1.bn.act), **device_dtype(block))
        block.se = nn.Identity()
        return become(block, cls, bridge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv1(x)
        s1 = bridge_pool(x)
        x = self.conv2(x)
        s2 = bridge_pool(x)
        if torch.jit.is_scripting() or getattr(self.conv3, 'aa', None) is not None:  # the plain formulas
            x = self.conv3(x)
            x = channel_gate(x, self.ba([s1, s2, bridge_pool(x)]))
            if self.downsample is not None:
                x = self.drop_path(x) + self.downsample(shortcut)
            return self.act3(x)
        # conv3's norm (no activation), the gate, drop-path and the residual add as one bridged norm
        residual = self.downsample is not None
        x = bridged_norm(self.conv3.conv(x), self.conv3.bn, self.ba, [s1, s2],
                         self.downsample(shortcut) if residual else None, self.drop_path if residual else None)
        return self.act3(x)


class BARegNet(BridgedModel, RegNet):
    """timm's ``RegNet`` whose bottlenecks are :class:`BARegNetBottleneck` (``ba_version``, ``ba_reduction``)."""
    plain_block, ba_block = Bottleneck, BARegNetBottleneck


default_cfgs = generate_default_cfgs({
    'ba_regnety_040': base_cfg('regnety_040', paper_ids='arXiv:2410.07860'),
})


@register_model
def ba_regnety_040(pretrained: bool = False, **kwargs) -> BARegNet:
    """BAv2 RegNetY-4.0GF (its SE replaced by the bridge)."""
    kwargs.setdefault('zero_init_last', False)
    return build_model_with_cfg(BARegNet, 'ba_regnety_040', pretrained, model_cfg=model_cfgs['regnety_040'], **kwargs)
