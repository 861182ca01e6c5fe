"""Global average pooling of a bridged feature map, with a backward that stays a broadcast view.

``x.mean((2, 3))`` back-propagates ``grad.expand(...) / (H * W)``: the division materialises a full (B, C, H, W)
tensor that autograd then adds to the feature map's other gradient, two extra passes over the map. Summing first and
scaling the small (B, C) result gives the same value, and its backward is a stride-0 ``expand`` that the
accumulation reads as a broadcast. Bridge attention pools every convolution of a block, so this matters.
"""
import torch

__all__ = ['bridge_pool']


def bridge_pool(x: torch.Tensor) -> torch.Tensor:
    """Mean over the spatial dims of a (B, C, H, W) tensor, as (B, C)."""
    return x.sum((2, 3)) * (1.0 / (x.shape[2] * x.shape[3]))
