"""Bridge attention: a channel gate computed from the pooled outputs of every convolution in a block.

BAv1: "BA-Net: Bridge Attention for Deep Convolutional Neural Networks" (ECCV 2022).
BAv2: "BA-Net: Bridge Attention in Deep Neural Networks" (arXiv:2410.07860).

Given the globally pooled outputs s_1 … s_N of a block's N convolutions (s_N belongs to the tensor being gated,
of width C), with d = C // reduction:

* v1 (sum):                z = Σ_i BN1d_i(W_i s_i);            gate = σ(W_g act(z))
* v2 (adaptive selection): f = Σ_i α_i W_i s_i + β;           gate = σ(W_g act(BN1d(f)))

W_i: Linear(c_i → d, no bias), W_g: Linear(d → C, no bias), α/β: the official ``Linear(N, 1)`` over the stacked
branches. Every sub-module keeps PyTorch's default initialisation, as the official code does.
"""
from typing import List, Sequence

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from timm.layers import LayerType, create_act_layer
from timm.layers._fx import register_notrace_function

__all__ = ['BridgeAttention', 'FusedBridgeAttention', 'check_trainable_batch']

_VERSIONS = ('v1', 'v2')


@register_notrace_function
def check_trainable_batch(x: torch.Tensor) -> None:
    """Raise a clear error where BatchNorm1d would fail on a training batch of one."""
    if x.shape[0] < 2:
        raise ValueError(
            f'bridge attention cannot train on a batch of {x.shape[0]}: its BatchNorm1d needs at least 2 samples. '
            'Use a batch size >= 2 and drop_last=True in the training DataLoader, or call model.eval().')


torch.fx.wrap('check_trainable_batch')


class BridgeAttention(nn.Module):
    """Per-channel gate from the bridged (pooled) features of a block.

    Args:
        in_channels: widths of the bridged features, in block order; the last one is the gated tensor's.
        channels: width C of the gated tensor (and of the returned gate).
        version: 'v1' (sum of per-branch normalised projections) or 'v2' (adaptive selection).
        reduction: hidden width is ``channels // reduction`` (plain integer division, as the official code).
        act_layer: activation between the fusion and the expansion (ReLU in the ResNets).
        gate_layer: gate non-linearity ('sigmoid'; 'hard_sigmoid' for MobileNetV3-style blocks).
    """

    def __init__(
            self,
            in_channels: Sequence[int],
            channels: int,
            version: str = 'v2',
            reduction: int = 16,
            act_layer: LayerType = nn.ReLU,
            gate_layer: LayerType = 'sigmoid',
            device=None,
            dtype=None,
    ) -> None:
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if version not in _VERSIONS:
            raise ValueError(f"unknown bridge attention version {version!r}: use one of {_VERSIONS}")
        if not in_channels:
            raise ValueError('bridge attention needs at least one bridged feature (in_channels is empty)')
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(
                f'channels // reduction is {channels} // {reduction} = 0: use a reduction <= {channels}')
        self.version = version
        self.in_channels = tuple(in_channels)
        self.channels = channels
        self.hidden = hidden

        self.proj = nn.ModuleList([nn.Linear(c, hidden, bias=False, **dd) for c in in_channels])
        if version == 'v1':
            self.proj_norm = nn.ModuleList([nn.BatchNorm1d(hidden, **dd) for _ in in_channels])
        else:
            self.select = nn.Linear(len(in_channels), 1, **dd)
            self.norm = nn.BatchNorm1d(hidden, **dd)
        self.act = create_act_layer(act_layer, inplace=True)
        self.fc = nn.Linear(hidden, channels, bias=False, **dd)
        self.gate = create_act_layer(gate_layer)

    def _has_batch_norm(self) -> bool:
        norms = self.proj_norm if self.version == 'v1' else [self.norm]
        return any(isinstance(n, nn.BatchNorm1d) for n in norms)

    def fuse_branches(self, pooled: List[torch.Tensor]) -> torch.Tensor:
        """The normalised fusion (B, hidden) of the pooled features, before the activation.

        v2 runs as one matrix product: Σ α_i W_i s_i + β = [α_1 W_1 … α_N W_N] · [s_1; …; s_N] + β, the
        selection weights folded into the concatenated projections on the fly (same parameters, same maths).
        """
        # only v1 bridges have proj_norm: TorchScript resolves hasattr when compiling, so it compiles one branch
        if hasattr(self, 'proj_norm'):
            branches = [n(p(pooled[i])) for i, (p, n) in enumerate(zip(self.proj, self.proj_norm))]
            fused = branches[0]
            for branch in branches[1:]:
                fused = fused + branch
            return fused
        alpha = self.select.weight
        weight = torch.cat([alpha[0, i] * p.weight for i, p in enumerate(self.proj)], dim=1)
        return self.norm(F.linear(torch.cat(pooled, dim=1), weight, self.select.bias.expand(self.hidden)))

    @torch.no_grad()
    def fuse(self) -> 'FusedBridgeAttention':
        """Inference form: projections, selection α/β and the 1-D norms folded into one Linear(Σc_i → hidden).

        Uses the norms' running statistics, so the result equals this module in eval mode.
        """
        def fold(norm: nn.BatchNorm1d):
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            return scale, norm.bias - norm.running_mean * scale

        weights = [p.weight for p in self.proj]
        if self.version == 'v1':
            folded = [fold(n) for n in self.proj_norm]
            weight = torch.cat([sc[:, None] * w for (sc, _), w in zip(folded, weights)], dim=1)
            bias = sum(sh for _, sh in folded)
        else:
            scale, shift = fold(self.norm)
            alpha, beta = self.select.weight[0], self.select.bias[0]
            weight = scale[:, None] * torch.cat([a * w for a, w in zip(alpha, weights)], dim=1)
            bias = scale * beta + shift
        linear = nn.Linear(weight.shape[1], self.hidden, device=weight.device, dtype=weight.dtype)
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
        return FusedBridgeAttention(linear, self.act, self.fc, self.gate, self.channels)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        """Gate of shape (B, C, 1, 1) from the pooled bridged features, each (B, c_i) or (B, c_i, 1, 1)."""
        if len(features) != len(self.proj):
            raise ValueError(f'bridge attention expects {len(self.proj)} bridged features, got {len(features)}')
        pooled = [f.flatten(1) for f in features]
        # scripted, BatchNorm1d raises its own error: TorchScript can resolve isinstance on sub-modules wrongly (it
        # did for BatchNorm1d once an FX graph holding one had been scripted)
        if not torch.jit.is_scripting():
            if self.training and self._has_batch_norm():
                check_trainable_batch(pooled[0])
        gate = self.gate(self.fc(self.act(self.fuse_branches(pooled))))
        return gate.view(gate.shape[0], self.channels, 1, 1)

    def extra_repr(self) -> str:
        return f'version={self.version!r}, in_channels={self.in_channels}, channels={self.channels}'


class FusedBridgeAttention(nn.Module):
    """Inference-only bridge: gate = σ(W_g act(W [s_1; …; s_N] + b)), made by :meth:`BridgeAttention.fuse`."""

    def __init__(self, linear: nn.Linear, act: nn.Module, fc: nn.Linear, gate: nn.Module, channels: int) -> None:
        super().__init__()
        self.linear, self.act, self.fc, self.gate = linear, act, fc, gate
        self.channels = channels

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        pooled = torch.cat([f.flatten(1) for f in features], dim=1)
        gate = self.gate(self.fc(self.act(self.linear(pooled))))
        return gate.view(gate.shape[0], self.channels, 1, 1)
