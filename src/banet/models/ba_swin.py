"""BA-Swin: timm's Swin Transformer with a bridge in every block.

Bridge attention: BAv1 (ECCV 2022) and BAv2 ("BA-Net: Bridge Attention in Deep Neural Networks", arXiv:2410.07860),
which argues bridges help vision transformers too; Swin: "Swin Transformer: Hierarchical Vision Transformer using
Shifted Windows" (ICCV 2021).

No official BA Swin code exists (the BAv2 authors report training one). Placement (docs/architectures.md): a Swin
block's transforms are the window attention and the MLP's two linear layers; the bridge averages each one's output
over all tokens of the image (attention output, act(fc1), fc2 output) and gates fc2's output, per channel, before the
MLP's residual add. GELU inside the bridge (the MLP's activation), hidden width C // 16.
"""
from typing import Optional

import torch

from timm.layers import LayerType, Mlp
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.swin_transformer import SwinTransformer, SwinTransformerBlock

from ..layers import BridgeAttention
from ._bridging import BridgedModel, base_cfg, become, device_dtype

__all__ = ['BASwinTransformerBlock', 'BASwinTransformer']


class BASwinTransformerBlock(SwinTransformerBlock):
    """Swin block whose MLP output is gated by a bridge over the attention and both MLP layers.

    Bridged (averaged over tokens): the window-attention output (C), act(fc1 ·) (hidden), fc2 output (C). Built with
    :meth:`from_block`.
    """

    @classmethod
    def from_block(
            cls, block: SwinTransformerBlock, version: str = 'v2', reduction: int = 16,
            act_layer: Optional[LayerType] = None,
    ) -> 'BASwinTransformerBlock':
        """Turn timm's block into this class in place; the bridge (PyTorch's default init) uses the MLP's
        activation unless ``act_layer`` is given."""
        if type(block) is not SwinTransformerBlock:
            raise TypeError(f'expected timm\'s SwinTransformerBlock, got {type(block).__name__}')
        if type(block.mlp) is not Mlp:
            raise ValueError(f'bridge attention in Swin expects timm\'s Mlp, got {type(block.mlp).__name__}')
        mlp = block.mlp
        width = mlp.fc2.out_features
        bridge = BridgeAttention(
            [block.dim, mlp.fc1.out_features, width], width, version=version, reduction=reduction,
            act_layer=act_layer or type(mlp.act), **device_dtype(block))
        return become(block, cls, bridge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        attn = self._attn(self.norm1(x))
        s1 = attn.mean((1, 2))
        x = (x + self.drop_path1(attn)).reshape(B, -1, C)
        mlp = self.mlp
        y = mlp.drop1(mlp.act(mlp.fc1(self.norm2(x))))
        s2 = y.mean(1)
        y = mlp.drop2(mlp.fc2(mlp.norm(y)))
        y = y * self.ba([s1, s2, y.mean(1)]).view(B, 1, C)
        x = x + self.drop_path2(y)
        return x.reshape(B, H, W, C)


class BASwinTransformer(BridgedModel, SwinTransformer):
    """timm's ``SwinTransformer`` whose blocks are :class:`BASwinTransformerBlock` (``ba_version``,
    ``ba_reduction``)."""
    plain_block, ba_block = SwinTransformerBlock, BASwinTransformerBlock


default_cfgs = generate_default_cfgs({
    'ba_swin_tiny_patch4_window7_224': base_cfg('swin_tiny_patch4_window7_224', paper_ids='arXiv:2410.07860'),
})


@register_model
def ba_swin_tiny_patch4_window7_224(pretrained: bool = False, **kwargs) -> BASwinTransformer:
    """BAv2 Swin-T, 224 px, window 7."""
    model_args = dict(patch_size=4, window_size=7, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))
    model_args = dict(model_args, **kwargs)
    return build_model_with_cfg(
        BASwinTransformer, 'ba_swin_tiny_patch4_window7_224', pretrained,
        feature_cfg=dict(flatten_sequential=True, out_indices=tuple(range(len(model_args['depths'])))),
        **model_args)
