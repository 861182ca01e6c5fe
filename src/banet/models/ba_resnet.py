"""BA-ResNet / BA-ResNeXt: timm's ResNet built from bridge-attention blocks.

BAv1: "BA-Net: Bridge Attention for Deep Convolutional Neural Networks" (ECCV 2022).
BAv2: "BA-Net: Bridge Attention in Deep Neural Networks" (arXiv:2410.07860).

``BABasicBlock`` and ``BABottleneck`` keep the constructor signature of timm's ``BasicBlock``/``Bottleneck`` (plus
``ba_version`` and ``ba_reduction``), so timm's ``ResNet`` builds them with every stem, cardinality, dilation,
drop-path and feature option it has. Models default to ``zero_init_last=False``, as the official code initialises.
``from_block`` turns an existing timm block (e.g. of a pretrained ResNet) into the BA block in place.
"""
from typing import Any, Dict, Optional, Type

import torch
from torch import nn

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

from ..layers import BridgeAttention, bridge_pool, bridged_norm, channel_gate
from ._bridging import become, device_dtype
from .official import checkpoint_filter_fn
from ._resnet import BanetResNet

__all__ = ['BABasicBlock', 'BABottleneck', 'create_ba_resnet']

# Norms that are a per-channel affine map of each pixel in eval mode (fused convs leave nn.Identity in their place)
_PIXELWISE_EVAL_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm, FrozenBatchNorm2d, nn.Identity)


def _check_plain(block: nn.Module, block_type: Type[nn.Module]) -> None:
    if type(block) is not block_type:
        raise TypeError(f'expected timm\'s {block_type.__name__}, got {type(block).__name__}')
    if block.se is not None:
        raise ValueError(
            f'this {block_type.__name__} already has an attention module ({type(block.se).__name__}); the bridge '
            'would silently replace it: start from a ResNet without attn_layer')


def _bridge(block: nn.Module, version: str, reduction: int, act_layer: Type[nn.Module]) -> BridgeAttention:
    """The bridge of a basic or bottleneck block: one bridged feature per norm (bn1, bn2[, bn3]), gating the last."""
    widths = [getattr(block, name).num_features for name in ('bn1', 'bn2', 'bn3') if hasattr(block, name)]
    return BridgeAttention(
        widths, widths[-1], version=version, reduction=reduction, act_layer=act_layer, **device_dtype(block))


class _BABlock:
    """What the BA basic and bottleneck blocks share; mixed in before timm's block class.

    The constructor takes timm's block signature plus ``ba_version`` and ``ba_reduction``; ``from_block`` converts
    a built timm block (of the class's ``plain_block``) instead. Both add the bridge with :func:`_bridge`.
    """

    def __init__(
            self,
            inplanes: int,
            planes: int,
            stride: int = 1,
            downsample: Optional[nn.Module] = None,
            cardinality: int = 1,
            base_width: int = 64,
            reduce_first: int = 1,
            dilation: int = 1,
            first_dilation: Optional[int] = None,
            act_layer: Type[nn.Module] = nn.ReLU,
            norm_layer: Type[nn.Module] = nn.BatchNorm2d,
            attn_layer: Optional[Type[nn.Module]] = None,
            aa_layer: Optional[Type[nn.Module]] = None,
            drop_block: Optional[Type[nn.Module]] = None,
            drop_path: Optional[nn.Module] = None,
            ba_version: str = 'v2',
            ba_reduction: int = 16,
            device=None,
            dtype=None,
    ) -> None:
        if attn_layer is not None:
            raise ValueError('BA blocks bring their own attention (the bridge): leave attn_layer=None')
        super().__init__(
            inplanes, planes, stride, downsample, cardinality, base_width, reduce_first, dilation, first_dilation,
            act_layer, norm_layer, None, aa_layer, drop_block, drop_path, device=device, dtype=dtype)
        self.ba = _bridge(self, ba_version, ba_reduction, act_layer)

    @classmethod
    def from_block(cls, block: nn.Module, version: str = 'v2', reduction: int = 16) -> nn.Module:
        """Turn timm's block (``plain_block``) into this class in place: same object, sub-modules and weights, plus
        a new bridge with PyTorch's default initialisation (as the official code)."""
        _check_plain(block, cls.plain_block)
        return become(block, cls, _bridge(block, version, reduction, type(block.act1)))

    def _gate_and_add(self, x: torch.Tensor, gate: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """``shortcut + drop_path(x * gate)`` as the plain formulas (the form TorchScript compiles)."""
        if self.drop_path is None:
            return channel_gate(x, gate, shortcut)
        return self.drop_path(channel_gate(x, gate)) + shortcut


class BABasicBlock(_BABlock, BasicBlock):
    """timm's BasicBlock with a bridge over both convolutions gating the bn2 output.

    Bridged: GAP(act1(bn1(conv1 x))) and GAP(bn2(conv2 ·)); the gate multiplies bn2's output before drop-path and
    the residual add. bn2, the gate and the add run as one :func:`~banet.layers.bridged_norm`.
    """
    plain_block = BasicBlock

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.drop_block(self.bn1(self.conv1(x))))
        s1 = bridge_pool(x)
        x = self.conv2(self.aa(x))
        if self.downsample is not None:  # here, not first: its output would be held through the whole block
            shortcut = self.downsample(shortcut)
        if torch.jit.is_scripting():  # TorchScript compiles the plain formulas alone
            x = self.bn2(x)
            return self.act2(self._gate_and_add(x, self.ba([s1, bridge_pool(x)]), shortcut))
        return self.act2(bridged_norm(x, self.bn2, self.ba, [s1], shortcut, self.drop_path))


class BABottleneck(_BABlock, Bottleneck):
    """timm's Bottleneck with a bridge over its three convolutions gating the bn3 output.

    Bridged: GAP(act1(bn1(conv1))), GAP(act2(bn2(conv2))), GAP(bn3(conv3)); the gate multiplies bn3's output before
    drop-path and the residual add. bn3, the gate and the add run as one :func:`~banet.layers.bridged_norm`.
    """
    plain_block = Bottleneck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        s1 = bridge_pool(x)
        x = self.act2(self.drop_block(self.bn2(self.conv2(x))))
        s2 = bridge_pool(x)
        x = self.conv3(self.aa(x))
        if self.downsample is not None:  # here, not first: its output would be held through the whole block
            shortcut = self.downsample(shortcut)
        if torch.jit.is_scripting():  # TorchScript compiles the plain formulas alone
            x = self.bn3(x)
            return self.act3(self._gate_and_add(x, self.ba([s1, s2, bridge_pool(x)]), shortcut))
        pool = self._eval_pool(s2)
        return self.act3(bridged_norm(x, self.bn3, self.ba, [s1, s2], shortcut, self.drop_path, pool))

    def _eval_pool(self, s2: torch.Tensor) -> Optional[torch.Tensor]:
        """GAP(bn3(conv3(·))) from the pooled ``s2``, where that is exact: in eval mode conv3 (1x1, stride 1) and
        bn3 map each pixel by the same affine function, which commutes with the spatial mean (no anti-aliasing
        layer between). Saves a pass over the block's widest map; None elsewhere."""
        if not self.training and type(self.aa) is nn.Identity and type(self.bn3) in _PIXELWISE_EVAL_NORMS:
            return self.bn3(self.conv3(s2[:, :, None, None])).flatten(1)
        return None


def create_ba_resnet(variant: str, pretrained: bool = False, version: str = 'v2', **kwargs: Any) -> BanetResNet:
    """Build a BA network with timm's builder; ``version`` picks BAv1 or BAv2 bridges for every block.

    ``ba_version`` and ``ba_reduction`` keywords (as in ``timm.create_model('ba_resnet50', ba_reduction=8)``) reach
    every block; ``block_args`` given explicitly win.

    Pretrained weights go through :func:`~banet.models.official.checkpoint_filter_fn`, so timm's own loading path
    takes an official BA-Net checkpoint too:
    ``timm.create_model('ba_resnet50', pretrained=True, pretrained_cfg_overlay=dict(file='official.pth.tar'))``.
    """
    block_args = dict(kwargs.pop('block_args', None) or {})
    block_args.setdefault('ba_version', kwargs.pop('ba_version', version))
    if 'ba_reduction' in kwargs:
        block_args.setdefault('ba_reduction', kwargs.pop('ba_reduction'))
    kwargs.setdefault('zero_init_last', False)
    return build_model_with_cfg(BanetResNet, variant, pretrained, block_args=block_args,
                                pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        'url': '', 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bilinear', 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'conv1', 'classifier': 'fc', 'license': 'apache-2.0', **kwargs,
    }


_BAV2 = 'arXiv:2410.07860'
_BAV1 = 'BA-Net, ECCV 2022'
default_cfgs = generate_default_cfgs({
    **{f'ba_resnet{d}': _cfg(paper_ids=_BAV2) for d in (18, 34, 50, 101, 152)},
    **{f'bav1_resnet{d}': _cfg(paper_ids=_BAV1) for d in (18, 34, 50, 101, 152)},
    'ba_resnext50_32x4d': _cfg(paper_ids=_BAV2),
    'ba_resnet50d': _cfg(paper_ids=_BAV2, interpolation='bicubic', first_conv='conv1.0'),
})

_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _build(name: str, depth: int, version: str, pretrained: bool, **kwargs: Any) -> BanetResNet:
    model_args = dict(block=BABasicBlock if depth < 50 else BABottleneck, layers=_DEPTHS[depth])
    return create_ba_resnet(name, pretrained, version=version, **dict(model_args, **kwargs))


@register_model
def ba_resnet18(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv2 ResNet-18."""
    return _build('ba_resnet18', 18, 'v2', pretrained, **kwargs)


@register_model
def ba_resnet34(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv2 ResNet-34."""
    return _build('ba_resnet34', 34, 'v2', pretrained, **kwargs)


@register_model
def ba_resnet50(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv2 ResNet-50."""
    return _build('ba_resnet50', 50, 'v2', pretrained, **kwargs)


@register_model
def ba_resnet101(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv2 ResNet-101."""
    return _build('ba_resnet101', 101, 'v2', pretrained, **kwargs)


@register_model
def ba_resnet152(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv2 ResNet-152."""
    return _build('ba_resnet152', 152, 'v2', pretrained, **kwargs)


@register_model
def bav1_resnet18(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv1 ResNet-18."""
    return _build('bav1_resnet18', 18, 'v1', pretrained, **kwargs)


@register_model
def bav1_resnet34(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv1 ResNet-34."""
    return _build('bav1_resnet34', 34, 'v1', pretrained, **kwargs)


@register_model
def bav1_resnet50(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv1 ResNet-50."""
    return _build('bav1_resnet50', 50, 'v1', pretrained, **kwargs)


@register_model
def bav1_resnet101(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv1 ResNet-101."""
    return _build('bav1_resnet101', 101, 'v1', pretrained, **kwargs)


@register_model
def bav1_resnet152(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv1 ResNet-152."""
    return _build('bav1_resnet152', 152, 'v1', pretrained, **kwargs)


@register_model
def ba_resnext50_32x4d(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv2 ResNeXt-50 (32x4d)."""
    return _build('ba_resnext50_32x4d', 50, 'v2', pretrained, **dict(dict(cardinality=32, base_width=4), **kwargs))


@register_model
def ba_resnet50d(pretrained: bool = False, **kwargs) -> BanetResNet:
    """BAv2 ResNet-50-D: deep 3x3 stem (width 32) and average-pool downsampling."""
    model_args = dict(stem_width=32, stem_type='deep', avg_down=True)
    return _build('ba_resnet50d', 50, 'v2', pretrained, **dict(model_args, **kwargs))
