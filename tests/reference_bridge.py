"""A straightforward implementation of the bridge-attention formulas, the reference for the fast layer."""
from typing import Sequence

import torch
import torch.nn.functional as F

from banet import BridgeAttention


def _bn(norm, x):
    """BatchNorm1d exactly as the module would apply it (batch statistics + running update in training)."""
    if norm.training:
        norm.num_batches_tracked.add_(1)
    return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                        norm.training, norm.momentum, norm.eps)


class ReferenceBridgeAttention(BridgeAttention):
    """Same parameters as BridgeAttention; the fusion written one branch at a time, as in the papers."""

    def fuse_branches(self, pooled: Sequence[torch.Tensor]) -> torch.Tensor:
        u = [s @ p.weight.T for p, s in zip(self.proj, pooled)]
        if self.version == 'v1':
            return sum(_bn(n, ui) for n, ui in zip(self.proj_norm, u))
        f = sum(a * ui for a, ui in zip(self.select.weight[0], u)) + self.select.bias[0]
        return _bn(self.norm, f)


def as_reference(ba: BridgeAttention) -> ReferenceBridgeAttention:
    """A reference copy of ``ba`` sharing nothing (same weights, buffers and mode)."""
    ref = ReferenceBridgeAttention(ba.in_channels, ba.channels, ba.version, ba.channels // ba.hidden)
    ref.load_state_dict(ba.state_dict())
    return ref.train(ba.training)


def _reference_forward(block, x):
    """A BA block as the official code writes it: mean pooling, a plain product, then drop-path and the add."""
    shortcut = x
    pooled = []
    x = block.act1(block.bn1(block.conv1(x)))
    pooled.append(x.mean((2, 3)))
    if hasattr(block, 'conv3'):
        x = block.act2(block.drop_block(block.bn2(block.conv2(x))))
        pooled.append(x.mean((2, 3)))
        x = block.bn3(block.conv3(block.aa(x)))
        act = block.act3
    else:
        x = block.bn2(block.conv2(block.aa(x)))
        act = block.act2
    pooled.append(x.mean((2, 3)))
    x = x * block.ba(pooled)
    if block.drop_path is not None:
        x = block.drop_path(x)
    if block.downsample is not None:
        shortcut = block.downsample(shortcut)
    return act(x + shortcut)


def as_reference_model(model):
    """A copy of a BA model whose blocks and bridges follow the straightforward formulas (same weights)."""
    import copy
    import types

    from banet import BABasicBlock, BABottleneck
    model = copy.deepcopy(model)
    for name, m in list(model.named_modules()):
        if isinstance(m, BridgeAttention):
            model.set_submodule(name, as_reference(m))
    for m in model.modules():
        if isinstance(m, (BABasicBlock, BABottleneck)):
            m.forward = types.MethodType(_reference_forward, m)
    return model
