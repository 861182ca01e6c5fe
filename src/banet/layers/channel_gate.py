"""Gating a feature map per channel, optionally fused with the residual add that follows it.

For ``y = x * g`` with g of shape (B, C, 1, 1), autograd computes the gate's gradient as ``(grad * x).sum((2, 3))``:
a full-size temporary, written and read again. On a contiguous (NCHW) map the same reduction is a batched dot
product (``einsum``) that reads both maps once and writes nothing big; on channels_last maps the plain product-sum
is faster and is kept. Given the block's shortcut, ``shortcut + x * g`` is one ``addcmul`` pass instead of a product
and an add. Same values, fewer passes over the largest tensor of a block.
"""
from typing import Optional

import torch
import torch.fx

from timm.layers._fx import register_notrace_function

__all__ = ['channel_gate']


class _ChannelGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, gate: torch.Tensor, shortcut: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(x, gate)
        return x * gate if shortcut is None else torch.addcmul(shortcut, x, gate)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, gate = ctx.saved_tensors
        grad_x = grad * gate if ctx.needs_input_grad[0] else None
        grad_gate = None
        if ctx.needs_input_grad[1]:
            if grad.dtype == x.dtype and grad.is_contiguous() and x.is_contiguous():
                grad_gate = torch.einsum('bchw,bchw->bc', grad, x).view_as(gate)
            else:
                grad_gate = (grad * x).sum((2, 3), keepdim=True)
        return grad_x, grad_gate, grad if ctx.needs_input_grad[2] else None


def _gate(x: torch.Tensor, gate: torch.Tensor, shortcut: Optional[torch.Tensor]) -> torch.Tensor:
    # TorchScript cannot compile an autograd.Function: is_scripting() is True when it compiles, so it keeps this
    # branch alone (the apply below is never compiled)
    if torch.jit.is_scripting() or torch.jit.is_tracing() or not (
            torch.is_grad_enabled() and (x.requires_grad or gate.requires_grad)):
        return x * gate if shortcut is None else torch.addcmul(shortcut, x, gate)
    return _ChannelGate.apply(x, gate, shortcut)


torch.fx.wrap('_gate')  # one call node under torch.fx.symbolic_trace (its branches test tensor attributes)


@register_notrace_function
def channel_gate(x: torch.Tensor, gate: torch.Tensor, shortcut: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``x * gate`` (x: (B, C, H, W), gate: (B, C, 1, 1)), or ``shortcut + x * gate`` when a shortcut is given.

    Without gradients to compute (inference), while TorchScript traces and in scripted code, plain tensor ops do
    the same.
    """
    return _gate(x, gate, shortcut)
