"""Freezing every batch norm of a model, the bridges' 1-D norms included (detection-style fine-tuning)."""
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from timm.layers import freeze_batch_norm_2d

__all__ = ['FrozenBatchNorm1d', 'freeze_norms']


class FrozenBatchNorm1d(FrozenBatchNorm2d):
    """BatchNorm1d with fixed statistics and affine parameters (torchvision's frozen norm on (B, C) input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()  # torchvision's maths, without its 2-D reshapes
        return x * scale + (self.bias - self.running_mean * scale)


def _freeze_1d(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm1d):
        frozen = FrozenBatchNorm1d(module.num_features, eps=module.eps)
        if module.affine:
            frozen.weight.copy_(module.weight.detach())
            frozen.bias.copy_(module.bias.detach())
        frozen.running_mean.copy_(module.running_mean)
        frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        new = _freeze_1d(child)
        if new is not child:
            setattr(module, name, new)
    return module


@torch.no_grad()
def freeze_norms(model: nn.Module) -> nn.Module:
    """Replace all BatchNorm2d/SyncBatchNorm (timm's ``freeze_batch_norm_2d``) and BatchNorm1d with frozen versions.

    Frozen norms use their running statistics in train and eval mode and have no trainable parameters.
    Returns the model (a new object only if ``model`` itself is a norm layer).
    """
    return _freeze_1d(freeze_batch_norm_2d(model))
