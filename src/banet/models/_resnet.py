"""timm's ResNet with an input check and any number of stages: the base class every banet ResNet is built on."""
from typing import List, Optional, Tuple, Union

import torch
import torch.fx
from torch import nn

from timm.layers._fx import register_notrace_function
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq
from timm.models.resnet import ResNet

__all__ = ['BanetResNet', 'check_input_channels']


@register_notrace_function
def check_input_channels(x: torch.Tensor, expected: int) -> None:
    """Raise a clear error for input that is not (B, expected, H, W); TorchScript compiles it too."""
    if x.ndim != 4 or x.shape[1] != expected:
        got = f'{x.shape[1]} channels' if x.ndim == 4 else f'a {x.ndim}-D tensor'
        in_chans = str(x.shape[1]) if x.ndim == 4 else 'N'
        shape = x.shape if torch.jit.is_scripting() else tuple(x.shape)  # TorchScript has no tuple(list)
        raise ValueError(
            f'the model expects (batch, {expected}, height, width) input, got {got} (shape {shape}). '
            f'Convert the images to {expected} channels, or create the model with in_chans={in_chans}.')


torch.fx.wrap('check_input_channels')


class BanetResNet(ResNet):
    """timm's :class:`~timm.models.resnet.ResNet` with a clear error on a wrong channel count.

    Runs as many stages as timm built (``layer1`` to at most ``layer4``; timm's own forward needs all four), and
    scripts with TorchScript.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stage_names = [info['module'] for info in self.feature_info[1:]]

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming expected and actual channels (kept as one call node under FX tracing)."""
        check_input_channels(x, self.in_chans)

    def _stages(self) -> List[nn.Module]:
        return [getattr(self, n) for n in self.stage_names]

    def _forward_stages(self, x: torch.Tensor) -> torch.Tensor:
        # literal names, as TorchScript needs them; it resolves hasattr when compiling, so absent stages compile away
        x = self.layer1(x)
        if hasattr(self, 'layer2'):
            x = self.layer2(x)
        if hasattr(self, 'layer3'):
            x = self.layer3(x)
        if hasattr(self, 'layer4'):
            x = self.layer4(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self._stages(), x, flatten=True)
        return self._forward_stages(x)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Stem (before the max-pool) and stage outputs: indices 0 … number of stages, as timm's ResNet."""
        assert output_fmt == 'NCHW', 'Output shape must be NCHW.'
        self.check_input(x)
        take_indices, max_index = feature_take_indices(len(self.stage_names) + 1, indices)
        intermediates = []
        x = self.act1(self.bn1(self.conv1(x)))
        if 0 in take_indices:
            intermediates.append(x)
        x = self.maxpool(x)
        stages = self._stages()[:max_index] if stop_early else self._stages()
        for idx, stage in enumerate(stages, start=1):
            x = checkpoint_seq(stage, x) if self.grad_checkpointing and not torch.jit.is_scripting() else stage(x)
            if idx in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Drop the stages after the last wanted intermediate (and the head, always when stages go)."""
        take_indices, max_index = feature_take_indices(len(self.stage_names) + 1, indices)
        for name in self.stage_names[max_index:]:
            setattr(self, name, nn.Sequential())  # empty, not Identity, so (flattened) checkpoint_seq can iterate it
        if max_index == 0:
            self.maxpool = nn.Identity()  # it follows the stem feature
        if max_index < len(self.stage_names):
            self.num_features = self.head_hidden_size = self.feature_info[max_index]['num_chs']
            prune_head = True
        if prune_head:
            self.reset_classifier(0, '')
        return take_indices
