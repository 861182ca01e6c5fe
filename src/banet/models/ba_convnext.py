"""BA-ConvNeXt: timm's ConvNeXt with a bridge in every block.

Bridge attention: BAv1 (ECCV 2022) and BAv2 ("BA-Net: Bridge Attention in Deep Neural Networks", arXiv:2410.07860);
ConvNeXt: "A ConvNet for the 2020s" (CVPR 2022).

No official BA ConvNeXt code exists (the BAv2 authors report training one). Placement, following the BA principle of
bridging every transform in the block and gating its last output before the residual add (docs/architectures.md):
the bridge pools norm(dwconv x), act(fc1 ·) and fc2's output over all positions and gates fc2's output before layer
scale, drop-path and the residual add. GELU inside the bridge (the block's activation), hidden width C // 16.
"""
from typing import Optional

import torch

from timm.layers import LayerType, Mlp
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.convnext import ConvNeXt, ConvNeXtBlock

from ..layers import BridgeAttention
from ._bridging import BridgedModel, base_cfg, become, device_dtype

__all__ = ['BAConvNeXtBlock', 'BAConvNeXt']


class BAConvNeXtBlock(ConvNeXtBlock):
    """ConvNeXt block whose fc2 output is gated by a bridge over its three transforms (channels-last MLP only).

    Bridged (averaged over positions): norm(conv_dw x) (C), act(fc1 ·) (4C), fc2 output (C). Built with
    :meth:`from_block`.
    """

    @classmethod
    def from_block(
            cls, block: ConvNeXtBlock, version: str = 'v2', reduction: int = 16, act_layer: Optional[LayerType] = None,
    ) -> 'BAConvNeXtBlock':
        """Turn timm's block into this class in place; the bridge (PyTorch's default init) uses the MLP's
        activation unless ``act_layer`` is given."""
        if type(block) is not ConvNeXtBlock:
            raise TypeError(f'expected timm\'s ConvNeXtBlock, got {type(block).__name__}')
        if block.use_conv_mlp or type(block.mlp) is not Mlp:
            raise ValueError('bridge attention in ConvNeXt needs the channels-last Mlp block: use conv_mlp=False')
        mlp = block.mlp
        width = mlp.fc2.out_features
        bridge = BridgeAttention(
            [block.conv_dw.out_channels, mlp.fc1.out_features, width], width, version=version, reduction=reduction,
            act_layer=act_layer or type(mlp.act), **device_dtype(block))
        return become(block, cls, bridge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm(self.conv_dw(x).permute(0, 2, 3, 1))
        s1 = x.mean((1, 2))
        mlp = self.mlp
        x = mlp.drop1(mlp.act(mlp.fc1(x)))
        s2 = x.mean((1, 2))
        x = mlp.drop2(mlp.fc2(mlp.norm(x)))
        x = x * self.ba([s1, s2, x.mean((1, 2))]).permute(0, 2, 3, 1)
        x = x.permute(0, 3, 1, 2)
        if self.gamma is not None:
            x = x.mul(self.gamma.reshape(1, -1, 1, 1))
        return self.drop_path(x) + self.shortcut(shortcut)


class BAConvNeXt(BridgedModel, ConvNeXt):
    """timm's ``ConvNeXt`` whose blocks are :class:`BAConvNeXtBlock` (``ba_version``, ``ba_reduction``)."""
    plain_block, ba_block = ConvNeXtBlock, BAConvNeXtBlock


default_cfgs = generate_default_cfgs({
    'ba_convnext_tiny': base_cfg('convnext_tiny', paper_ids='arXiv:2410.07860'),
})


@register_model
def ba_convnext_tiny(pretrained: bool = False, **kwargs) -> BAConvNeXt:
    """BAv2 ConvNeXt-T."""
    model_args = dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768))
    return build_model_with_cfg(
        BAConvNeXt, 'ba_convnext_tiny', pretrained,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True), **dict(model_args, **kwargs))
