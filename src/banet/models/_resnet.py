"""timm's ResNet with an input check: the base class every banet ResNet is built on."""
from typing import List, Optional, Tuple, Union

import torch
import torch.fx

from timm.layers._fx import register_notrace_function
from timm.models.resnet import ResNet

__all__ = ['BanetResNet', 'check_input_channels']


@register_notrace_function
def check_input_channels(x: torch.Tensor, expected: int) -> None:
    """Raise a clear error for input that is not (B, expected, H, W)."""
    if x.ndim != 4 or x.shape[1] != expected:
        got = f'{x.shape[1]} channels' if x.ndim == 4 else f'a {x.ndim}-D tensor'
        raise ValueError(
            f'the model expects (batch, {expected}, height, width) input, got {got} (shape {tuple(x.shape)}). '
            f'Convert the images to {expected} channels, or create the model with in_chans={x.shape[1] if x.ndim == 4 else "N"}.')


torch.fx.wrap('check_input_channels')


class BanetResNet(ResNet):
    """timm's :class:`~timm.models.resnet.ResNet`, unchanged but for a clear error on a wrong channel count."""

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming expected and actual channels (kept as one call node under FX tracing)."""
        check_input_channels(x, self.in_chans)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return super().forward_features(x)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        self.check_input(x)
        return super().forward_intermediates(x, indices, norm, stop_early, output_fmt, intermediates_only)
