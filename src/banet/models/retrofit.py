"""Retrofitting: add bridge attention to an existing (e.g. pretrained) timm or torchvision ResNet / ResNeXt in place.

Bridge attention: BAv1 (ECCV 2022) and BAv2 ("BA-Net: Bridge Attention in Deep Neural Networks", arXiv:2410.07860).

Every basic and bottleneck block becomes its BA form without being copied: the block object, its convolutions,
norms and shortcut stay (same tensors, same values), only its forward changes and a bridge ``ba`` is added with
PyTorch's default initialisation (as the official code). timm's blocks become :class:`banet.BABasicBlock` /
:class:`banet.BABottleneck`; torchvision's, whose attribute names differ, the two small adapters below.
"""
import torch
from torch import nn
from torchvision.models import resnet as tv

from timm.models import resnet as tm

from ..errors import BanetError
from ..layers import BridgeAttention, bridge_pool, channel_gate
from . import BABasicBlock, BABottleneck
from ._bridging import become, device_dtype

__all__ = ['add_bridge_attention', 'TVBABasicBlock', 'TVBABottleneck']


def _tv_bridge(widths, version: str, reduction: int, block: nn.Module) -> BridgeAttention:
    return BridgeAttention(widths, widths[-1], version=version, reduction=reduction, **device_dtype(block))


class TVBABasicBlock(tv.BasicBlock):
    """torchvision's ``BasicBlock`` with a bridge over relu(bn1(conv1 x)) and bn2(conv2 ·) gating bn2's output."""
    ba: BridgeAttention

    @classmethod
    def from_block(cls, block: tv.BasicBlock, version: str = 'v2', reduction: int = 16) -> 'TVBABasicBlock':
        """Turn the block into this class in place, adding a bridge with PyTorch's default init."""
        widths = [block.bn1.num_features, block.bn2.num_features]
        return become(block, cls, _tv_bridge(widths, version, reduction, block))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.relu(self.bn1(self.conv1(x)))
        s1 = bridge_pool(x)
        x = self.bn2(self.conv2(x))
        return self.relu(channel_gate(x, self.ba([s1, bridge_pool(x)]), shortcut))


class TVBABottleneck(tv.Bottleneck):
    """torchvision's ``Bottleneck`` with a bridge over its three convolutions (after norm and ReLU; the last
    after its norm) gating bn3's output."""
    ba: BridgeAttention

    @classmethod
    def from_block(cls, block: tv.Bottleneck, version: str = 'v2', reduction: int = 16) -> 'TVBABottleneck':
        """Turn the block into this class in place, adding a bridge with PyTorch's default init."""
        widths = [block.bn1.num_features, block.bn2.num_features, block.bn3.num_features]
        return become(block, cls, _tv_bridge(widths, version, reduction, block))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.relu(self.bn1(self.conv1(x)))
        s1 = bridge_pool(x)
        x = self.relu(self.bn2(self.conv2(x)))
        s2 = bridge_pool(x)
        x = self.bn3(self.conv3(x))
        return self.relu(channel_gate(x, self.ba([s1, s2, bridge_pool(x)]), shortcut))


_CONVERTERS = {
    tm.BasicBlock: BABasicBlock.from_block,
    tm.Bottleneck: BABottleneck.from_block,
    tv.BasicBlock: TVBABasicBlock.from_block,
    tv.Bottleneck: TVBABottleneck.from_block,
}


def add_bridge_attention(model: nn.Module, version: str = 'v2', reduction: int = 16) -> nn.Module:
    """Give every ResNet block of ``model`` (timm's or torchvision's) a bridge, in place; returns ``model``.

    Convolutions, norms, shortcuts and the classifier keep their weights; the new bridges (``version`` 'v2' or 'v1',
    hidden width C // ``reduction``) start from PyTorch's default initialisation. Fine-tune afterwards
    (docs/retrofit.md); the bridges' BatchNorm1d needs training batches of at least 2.
    """
    blocks = [m for m in model.modules() if type(m) in _CONVERTERS]
    if not blocks:
        raise BanetError(
            f'found no ResNet block to bridge in {type(model).__name__}: add_bridge_attention converts timm\'s and '
            'torchvision\'s ResNet/ResNeXt (BasicBlock, Bottleneck) that have no bridge yet; for the other '
            'families create the ba_* model (e.g. timm.create_model("ba_convnext_tiny"))')
    # every check comes before the first change, so a bad argument leaves the model as it was
    with_attn = [type(b.se).__name__ for b in blocks if getattr(b, 'se', None) is not None]
    if with_attn:
        raise BanetError(
            f'the model\'s blocks already have an attention module ({with_attn[0]}) that the bridge would silently '
            'replace: retrofit a ResNet without attn_layer')
    widths = [(b.bn3 if hasattr(b, 'bn3') else b.bn2).num_features for b in blocks]
    BridgeAttention([1], min(widths), version=version, reduction=reduction, device='meta')  # raises on bad arguments
    for block in blocks:
        _CONVERTERS[type(block)](block, version, reduction)
    return model
