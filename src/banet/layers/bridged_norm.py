"""The bridged norm: a block's last batch norm, its bridge gate and the residual add as one operation.

Bridge attention (BAv1, ECCV 2022; BAv2, arXiv:2410.07860) gates the output ``y = BN(x)`` of a block's last norm
with a gate computed from, among others, ``GAP(y)``. Written plainly, ``y`` is written, read again for its pool,
and read once more by the gate. In training mode that pool is an affine function of statistics the norm computes
anyway:

    GAP(BN(x))[n, c] = γ_c · (mean_hw(x)[n, c] − μ_c) · rstd_c + β_c

with μ_c and var_c following exactly from the per-(n, c) mean and variance of x (the law of total variance over
the batch). So one reduction over x gives the norm's statistics and the bridged feature; the gate is a (B, C) vector
known before the output pass; and ``shortcut + g · BN(x)`` is one per-(n, c) scale-and-shift of x. In backward,
the gate's gradient needs only the per-(n, c) sums Σ grad and Σ grad · x, and the input gradient is one pass
``a[n, c] · grad + b[c] · x + c[n, c]``. Nothing but x and (B, C) vectors is saved, as a plain norm saves x.

Three forms, one maths:

* eager training: two autograd functions (statistics pass, output pass) that hold the small (B, C) maths too; the
  output function hands its incoming gradient to the statistics function, which autograd runs after it, so the
  input gradient is made once;
* compiled (``torch.compile``) training: the same formulas in plain tensor ops, which inductor fuses into one
  reduction and one pointwise kernel per pass;
* eval mode, frozen norms and folded convolutions (a per-channel affine map): the norm, then the pool of its output;
  TorchScript, FX tracing and ONNX export see this plain form too.

With a :class:`~torch.nn.SyncBatchNorm` under an initialised process group, the statistics and the gradient sums
are all-reduced over the norm's group, as SyncBatchNorm does, so they are the global batch's (on any device, CPU
and gloo included).
"""
from typing import Callable, List, Optional, Tuple

import torch
import torch.distributed as dist
import torch.fx
from torch import nn

from timm.layers import BatchNormAct2d

from .bridge_pool import bridge_pool
from .channel_gate import channel_gate

__all__ = ['bridged_norm']

Bridge = Callable[[List[torch.Tensor]], torch.Tensor]

# exact types: a subclass adds to the forward and runs as written, except timm's norm + act layer without its act
_BATCH_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


def _batch_norm_alone(norm: nn.Module) -> bool:
    """Whether ``norm`` is a plain batch norm: BatchNorm2d, SyncBatchNorm, or timm's BatchNormAct2d whose
    activation and dropout are identities (the last norm of a timm ConvNormAct with ``apply_act=False``)."""
    if type(norm) in _BATCH_NORMS:
        return True
    return type(norm) is BatchNormAct2d and type(norm.act) is nn.Identity and type(norm.drop) is nn.Identity


def _momentum(norm: nn.modules.batchnorm._BatchNorm) -> float:
    """The running-statistics factor of this step, counting the step as nn.BatchNorm2d does."""
    if not (norm.training and norm.track_running_stats):
        return 0.0
    norm.num_batches_tracked.add_(1)
    return 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum


@torch.no_grad()
def _update_running(norm: nn.modules.batchnorm._BatchNorm, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
    factor = _momentum(norm)
    if factor and norm.running_mean is not None:
        norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), factor)
        norm.running_var.lerp_((var * (count / max(count - 1, 1))).to(norm.running_var.dtype), factor)


def _sync_group(norm: nn.Module):
    """The process group whose batch a SyncBatchNorm normalises over, or None for a local norm."""
    if not (isinstance(norm, nn.SyncBatchNorm) and norm.training and dist.is_available() and dist.is_initialized()):
        return None
    group = norm.process_group or dist.group.WORLD
    return group if dist.get_world_size(group) > 1 else None


def _channel_stats(
        mean_nc: torch.Tensor, var_nc: torch.Tensor, hw: int, group) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel batch mean and (biased) variance from per-(n, c) ones; over the group's global batch if given."""
    n = mean_nc.shape[0]
    if group is None:
        mu = mean_nc.mean(0)
        return mu, (var_nc + (mean_nc - mu).square()).mean(0), n * hw
    # sums over the local batch, then over every process: Σ x and Σ x² per channel, and the element count
    sums = torch.cat([mean_nc.sum(0), (var_nc + mean_nc.square()).sum(0),
                      mean_nc.new_full((1,), float(n))])
    dist.all_reduce(sums, group=group)
    c = mean_nc.shape[1]
    total = sums[2 * c]
    mu = sums[:c] / total
    var = (sums[c:2 * c] / total - mu.square()).clamp_min(0)
    return mu, var, int(total.item()) * hw


def _affine_terms(mean_nc: torch.Tensor, mu: torch.Tensor, rstd: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pool GAP(BN(x)) = γ (mean_nc − μ) rstd + β (N, C), and BN's per-channel scale γ·rstd and shift
    β − μ·γ·rstd (C), from the batch statistics."""
    w_rstd = weight * rstd
    return torch.addcmul(bias, mean_nc - mu, w_rstd), w_rstd, bias - mu * w_rstd


class _Handoff:
    """What the two passes share: the output pass's incoming gradient and scale (for the statistics pass, which
    autograd runs after it), and the batch statistics for the running update."""
    __slots__ = ('grad', 'scale', 'mean', 'var', 'count')

    def __init__(self) -> None:
        self.grad: Optional[torch.Tensor] = None
        self.scale: Optional[torch.Tensor] = None
        self.mean: Optional[torch.Tensor] = None
        self.var: Optional[torch.Tensor] = None
        self.count = 0


class _Statistics(torch.autograd.Function):
    """x, γ, β → the pool GAP(BN(x)) (N, C), γ·rstd and β − μ·γ·rstd (C): the norm's statistics pass.

    Backward returns the whole input gradient: the output pass's direct term ``scale · grad`` (handed over) plus
    those of the per-(n, c) means, μ and rstd, in one pass; and γ's and β's gradients.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor], eps: float,
                group, handoff: _Handoff):
        hw = x.shape[2] * x.shape[3]
        squares, sums = _nc_sums(x, x)
        mean_nc = sums / hw
        var_nc = (squares / hw - mean_nc.square()).clamp_min(0)
        mu, var, count = _channel_stats(mean_nc, var_nc, hw, group)
        rstd = torch.rsqrt(var + eps)
        w = torch.ones_like(rstd) if weight is None else weight.to(rstd.dtype)
        b = torch.zeros_like(rstd) if bias is None else bias.to(rstd.dtype)
        ctx.save_for_backward(x, mean_nc - mu, mu, rstd, w)
        ctx.count, ctx.group, ctx.handoff = count, group, handoff
        ctx.param_dtype = None if weight is None else weight.dtype
        handoff.mean, handoff.var, handoff.count = mu, var, count
        return _affine_terms(mean_nc, mu, rstd, w, b)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_pool, d_w_rstd, d_shift):
        x, centred, mu, rstd, w = ctx.saved_tensors
        grad, scale = ctx.handoff.grad, ctx.handoff.scale
        ctx.handoff.grad = ctx.handoff.scale = None
        zeros = torch.zeros_like(rstd)
        d_pool = zeros.expand_as(centred) if d_pool is None else d_pool
        d_w_rstd = zeros if d_w_rstd is None else d_w_rstd
        d_shift = zeros if d_shift is None else d_shift
        # pool = w (m_nc − μ) rstd + b, w_rstd = w rstd, shift = b − μ w rstd: gradients of m_nc, μ, rstd, w, b
        d_pool_sum = d_pool.sum(0)
        d_mean_nc = d_pool * (w * rstd)
        d_mu = -(d_pool_sum + d_shift) * w * rstd
        d_w_times_rstd = (d_pool * centred).sum(0) + d_w_rstd - d_shift * mu  # the gradient of γ·rstd as a product
        d_rstd = d_w_times_rstd * w
        d_weight = d_bias = None
        if ctx.needs_input_grad[1]:
            d_weight = (d_w_times_rstd * rstd).to(ctx.param_dtype)
        if ctx.needs_input_grad[2]:
            d_bias = (d_pool_sum + d_shift).to(ctx.param_dtype)
        dx = None
        if ctx.needs_input_grad[0]:
            if ctx.group is not None:  # μ and rstd are the global batch's: every process's gradients reach every x
                both = torch.cat([d_mu, d_rstd])
                dist.all_reduce(both, group=ctx.group)
                d_mu, d_rstd = both.chunk(2)
            # d rstd / d x = −rstd³ (x − μ) / count; d μ / d x = 1 / count; d mean_nc / d x = 1 / hw
            hw = x.shape[2] * x.shape[3]
            b = -d_rstd * rstd.pow(3) / ctx.count
            c = d_mean_nc / hw + (d_mu / ctx.count - b * mu)
            if grad is None:
                dx = _scale_shift(x, b.expand_as(c), c)
            else:
                dx = _scale_shift(grad, scale, c).addcmul_(x, b[:, None, None].to(grad.dtype))
        return dx, d_weight, d_bias, None, None, None


def _per_sample_channels(t: torch.Tensor) -> Optional[torch.Tensor]:
    """A contiguous (N, C, H, W) map viewed as (1, N·C, H, W), each (n, c) one channel of ATen's batch-norm
    kernels (vectorised, parallel over channels); None for other layouts."""
    return t.view(1, t.shape[0] * t.shape[1], t.shape[2], t.shape[3]) if t.is_contiguous() else None


def _stat_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.promote_types(t.dtype, torch.float32)


# per-sample size from which a batch-norm kernel call per channels_last sample beats writing the product (measured:
# 16 x 256 x 56 x 56 bf16, 2.8 against 55 ms; 64 x 16 x 28 x 28, 1.9 against 0.3 ms)
_LOOP_MIN = 1 << 17


def _nc_sums(a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Σ_hw a · b and Σ_hw a per (n, c), in one pass, accumulated in float32 or wider.

    This is the weight and bias gradient of an eval-mode batch norm with unit statistics: ATen's kernel reads both
    maps once and writes nothing big. Contiguous maps go in as one (1, N·C, H, W) view; large channels_last ones one
    sample at a time (each sample's (1, C, H, W) slice is a channels_last map); small channels_last maps, where a
    kernel call per sample costs more than the product it saves, as a product and two sums.
    """
    n, c = a.shape[:2]
    dtype = _stat_dtype(a)
    va, vb = _per_sample_channels(a), _per_sample_channels(b)
    if va is not None and vb is not None:
        ones = torch.ones(n * c, dtype=dtype, device=a.device)
        _, ab, sa = _bn_sums(va, vb, ones)
        return ab.view(n, c), sa.view(n, c)
    cl = torch.channels_last
    if a[0].numel() >= _LOOP_MIN and a.is_contiguous(memory_format=cl) and b.is_contiguous(memory_format=cl):
        ones = torch.ones(c, dtype=dtype, device=a.device)
        parts = [_bn_sums(a[i:i + 1], b[i:i + 1], ones) for i in range(n)]
        return torch.stack([p[1] for p in parts]), torch.stack([p[2] for p in parts])
    return (a * b).sum((2, 3), dtype=dtype), a.sum((2, 3), dtype=dtype)


def _bn_sums(a: torch.Tensor, b: torch.Tensor, ones: torch.Tensor):
    return torch.ops.aten.native_batch_norm_backward(
        a, b, ones, torch.zeros_like(ones), ones, None, None, False, 0.0, [False, True, True])


def _scale_shift(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``x · scale + shift`` with per-(n, c) scale and shift (N, C): one pass, computed in float32 or wider,
    returned in x's dtype and layout."""
    v = _per_sample_channels(x)
    if v is None:
        return torch.addcmul(shift[:, :, None, None].to(x.dtype), x, scale[:, :, None, None].to(x.dtype))
    zeros = torch.zeros(scale.numel(), dtype=scale.dtype, device=x.device)
    out = torch.native_batch_norm(v, scale.flatten(), shift.flatten(), zeros, torch.ones_like(zeros), False, 0.0, 0.0)
    return out[0].view_as(x).detach()  # not a view for autograd: the block's activation may work in place


class _ScaleShift(torch.autograd.Function):
    """``shortcut + g · (w_rstd · x + shift)`` with the per-(n, c) gate g: the output pass; x's gradient goes to
    the handoff (the statistics pass adds its own terms and returns the whole)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gate: torch.Tensor, w_rstd: torch.Tensor, shift: torch.Tensor,
                shortcut: Optional[torch.Tensor], handoff: _Handoff):
        scale = gate * w_rstd
        out = _scale_shift(x, scale, gate * shift)
        if shortcut is not None:
            out += shortcut
        ctx.save_for_backward(x, gate, w_rstd, shift, scale)
        ctx.handoff = handoff
        ctx.has_shortcut = shortcut is not None
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, gate, w_rstd, shift, scale = ctx.saved_tensors
        gx, g = _nc_sums(grad, x)  # Σ grad · x and Σ grad per (n, c): the gradients of scale and of shift
        ctx.handoff.grad, ctx.handoff.scale = grad, scale
        d_gate = (gx * w_rstd + g * shift).to(gate.dtype)
        return (None, d_gate, (gx * gate).sum(0), (g * gate).sum(0), grad if ctx.has_shortcut else None, None)


def _gate_of(bridge: Bridge, pooled: List[torch.Tensor], pool: torch.Tensor,
             drop_path: Optional[nn.Module]) -> torch.Tensor:
    gate = bridge(pooled + [pool])
    if drop_path is not None:  # drop-path of the gated map is drop-path of the gate: same draw, same scale
        gate = drop_path(gate)
    return gate.flatten(1)


def _eager(x, norm, bridge, pooled, shortcut, drop_path, group) -> torch.Tensor:
    handoff = _Handoff()
    pool, w_rstd, shift = _Statistics.apply(x, norm.weight, norm.bias, norm.eps, group, handoff)
    _update_running(norm, handoff.mean, handoff.var, handoff.count)
    gate = _gate_of(bridge, pooled, pool.to(x.dtype), drop_path)
    return _ScaleShift.apply(x, gate, w_rstd, shift, shortcut, handoff)


def _formula(x, norm, bridge, pooled, shortcut, drop_path) -> torch.Tensor:
    """The same maths in plain tensor ops, for torch.compile (inductor fuses each pass into one kernel)."""
    var_nc, mean_nc = torch.var_mean(x, dim=(2, 3), correction=0)
    mean_nc, var_nc = mean_nc.to(_stat_dtype(x)), var_nc.to(_stat_dtype(x))
    mu, var, count = _channel_stats(mean_nc, var_nc, x.shape[2] * x.shape[3], None)
    _update_running(norm, mu.detach(), var.detach(), count)
    weight = torch.ones_like(mu) if norm.weight is None else norm.weight
    bias = torch.zeros_like(mu) if norm.bias is None else norm.bias
    pool, w_rstd, shift = _affine_terms(mean_nc, mu, torch.rsqrt(var + norm.eps), weight, bias)
    gate = _gate_of(bridge, pooled, pool, drop_path)
    out = x * (gate * w_rstd)[:, :, None, None].to(x.dtype) + (gate * shift)[:, :, None, None].to(x.dtype)
    return out if shortcut is None else out + shortcut


def _plain(x, norm, bridge, pooled, shortcut, drop_path, pool=None) -> torch.Tensor:
    """Norm, pool of its output, gate, drop-path and add: the straightforward block."""
    y = norm(x)
    gate = bridge(pooled + [bridge_pool(y) if pool is None else pool])
    if (shortcut is not None and drop_path is None and not torch.is_grad_enabled()
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and y.shape == shortcut.shape and y.stride() == shortcut.stride()):
        # inference: gate and add in place, into the norm's output (x itself for a folded norm), as a plain block adds
        # its shortcut in place; a fresh output costs as much again as the pass (first-touch page faults)
        return torch.addcmul(shortcut, y, gate, out=y)
    if drop_path is None:
        return channel_gate(y, gate, shortcut)
    y = drop_path(channel_gate(y, gate))
    return y if shortcut is None else y + shortcut


def bridged_norm(
        x: torch.Tensor,
        norm: nn.Module,
        bridge: Bridge,
        pooled: List[torch.Tensor],
        shortcut: Optional[torch.Tensor] = None,
        drop_path: Optional[nn.Module] = None,
        pool: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``shortcut + drop_path(g · norm(x))`` with ``g = bridge(pooled + [GAP(norm(x))])``, x: (B, C, H, W).

    ``pooled`` holds the block's other bridged features ((B, c_i) each), ``bridge`` maps the list to a (B, C, 1, 1)
    gate (a :class:`~banet.layers.BridgeAttention`), ``drop_path`` is the block's per-sample drop-path, if any.
    ``pool``: GAP(norm(x)) where the caller has it more cheaply (used only where the norm runs as written).

    Batch-statistics norms (BatchNorm2d/SyncBatchNorm in training, also timm's BatchNormAct2d without activation)
    take the pool from their statistics; every other norm (eval mode, frozen, Identity for a folded convolution)
    runs as written. Running statistics and ``num_batches_tracked`` update as the norm's own forward would.
    Without autograd recording (inference), the result is written into the norm's output, which is x itself when
    the norm is an identity (a folded convolution): x is consumed.
    """
    if not _batch_norm_alone(norm) or not (norm.training or norm.running_mean is None) or (
            torch.fx._symbolic_trace.is_fx_symbolic_tracing() or torch.jit.is_tracing()):
        return _plain(x, norm, bridge, pooled, shortcut, drop_path, pool)
    group = _sync_group(norm)
    if group is None and x.shape[0] * x.shape[2] * x.shape[3] == 1:
        raise ValueError(f'Expected more than 1 value per channel when training, got input size {tuple(x.shape)}')
    if torch.compiler.is_compiling():
        if group is not None:  # inductor cannot trace the all-reduces; SyncBatchNorm does them itself
            return _plain(x, norm, bridge, pooled, shortcut, drop_path)
        return _formula(x, norm, bridge, pooled, shortcut, drop_path)
    return _eager(x, norm, bridge, pooled, shortcut, drop_path, group)
