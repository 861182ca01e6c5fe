"""A feature pyramid over any timm backbone, shaped as torchvision's detectors expect.

FPN: Lin et al., *Feature Pyramid Networks for Object Detection*, CVPR 2017. Bridge attention backbones:
*BA-Net: Bridge Attention for Deep Convolutional Neural Networks* (ECCV 2022) and *BA-Net: Bridge Attention in
Deep Neural Networks* (arXiv:2410.07860).
"""
from collections import OrderedDict
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7

from ..dense.features import TimmFeatures, WeightsReport
from ..errors import BanetError

__all__ = ['EXTRA_BLOCKS', 'TimmFPN']

EXTRA_BLOCKS = ('maxpool', 'p6p7')


class TimmFPN(nn.Module):
    """timm ``features_only`` backbone + torchvision ``FeaturePyramidNetwork``; returns ``OrderedDict`` of levels.

    Levels are named '0', '1', ... (one per returned stage, as torchvision's RoI poolers expect) plus 'pool'
    (``extra='maxpool'``: ``LastLevelMaxPool``, the R-CNN recipe) or 'p6', 'p7' (``extra='p6p7'``:
    ``LastLevelP6P7`` on P5, the RetinaNet/FCOS recipe). ``out_channels`` is the FPN width and ``strides`` the
    stride of every level, extras included. ``returned_stages`` are timm feature indices (negative from the end);
    ``trainable_layers``, ``norm`` and ``weights`` are those of :class:`TimmFeatures`.
    """

    def __init__(self, name: str, *, returned_stages: Sequence[int] = (-4, -3, -2, -1), extra: str = 'maxpool',
                 fpn_channels: int = 256, trainable_layers: Optional[int] = 3, norm: str = 'frozen',
                 weights: Optional[Mapping[str, torch.Tensor]] = None, **model_kwargs: Any) -> None:
        super().__init__()
        if extra not in EXTRA_BLOCKS:
            raise BanetError(f"extra must be one of {EXTRA_BLOCKS}, got '{extra}'")
        self.features = TimmFeatures(name, returned_stages, weights=weights, trainable_layers=trainable_layers,
                                     norm=norm, **model_kwargs)
        extra_block = LastLevelMaxPool() if extra == 'maxpool' else LastLevelP6P7(fpn_channels, fpn_channels)
        n_extra = 1 if extra == 'maxpool' else 2
        self.fpn = FeaturePyramidNetwork(self.features.channels, fpn_channels, extra_blocks=extra_block)
        self.out_channels = fpn_channels
        self.level_names = [str(i) for i in range(len(self.features.channels))]
        last = self.features.reductions[-1]
        self.strides: list[int] = self.features.reductions + [last * 2 ** (i + 1) for i in range(n_extra)]

    @property
    def weights_report(self) -> Optional[WeightsReport]:
        """Missing/unexpected keys of the classification weights the backbone was built with (None without)."""
        return self.features.weights_report

    def forward(self, x: torch.Tensor) -> 'OrderedDict[str, torch.Tensor]':
        return self.fpn(OrderedDict(zip(self.level_names, self.features(x))))
