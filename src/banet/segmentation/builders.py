"""torchvision's DeepLabV3 and FCN over a dilated timm backbone.

DeepLabV3: Chen et al., *Rethinking Atrous Convolution for Semantic Image Segmentation*, arXiv:1706.05587.
FCN: Long et al., *Fully Convolutional Networks for Semantic Segmentation*, CVPR 2015.
"""
from typing import Any, Mapping, Optional

import torch
from torch import nn
from torchvision.models.segmentation import FCN, DeepLabV3
from torchvision.models.segmentation.deeplabv3 import DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead

from ..dense.features import TimmFeatures
from ..errors import BanetError

__all__ = ['ARCHS', 'OUTPUT_STRIDES', 'DenseBackbone', 'create_segmenter']

ARCHS = ('deeplabv3', 'fcn')
_ATROUS_RATES = {8: (12, 24, 36), 16: (6, 12, 18)}  # DeepLabV3's ASPP rates for each output stride
OUTPUT_STRIDES = tuple(_ATROUS_RATES)


class DenseBackbone(nn.Module):
    """timm features as torchvision's segmenters take them: ``{'out': last stage, 'aux': the one before}``."""

    def __init__(self, features: TimmFeatures) -> None:
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.features(x)
        return {'out': feats[-1], 'aux': feats[-2]} if len(feats) > 1 else {'out': feats[-1]}


def create_segmenter(arch: str, backbone: str = 'ba_resnet50', num_classes: int = 21, *, output_stride: int = 8,
                     aux: bool = False, backbone_weights: Optional[Mapping[str, torch.Tensor]] = None,
                     norm: str = 'bn', trainable_layers: Optional[int] = None,
                     backbone_kwargs: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """torchvision ``DeepLabV3`` (``DeepLabHead``) or ``FCN`` (``FCNHead``) over ``timm.create_model(backbone,
    output_stride=...)``; ``aux`` adds torchvision's auxiliary ``FCNHead`` on the second-to-last stage.

    The model returns ``{'out': logits, 'aux': logits}`` at the input size and does not normalise its input.
    ``norm='bn'`` (default, as torchvision's segmenters) trains the batch norms, ``'frozen'`` freezes them all
    (bridges' BatchNorm1d included; the heads keep theirs). ``backbone_weights`` and ``trainable_layers``
    (default: all) are :class:`~banet.dense.features.TimmFeatures`'; the report is in
    ``model.backbone.features.weights_report``.
    """
    if arch not in ARCHS:
        raise BanetError(f"unknown segmenter '{arch}', expected one of {ARCHS}")
    if output_stride not in OUTPUT_STRIDES:
        raise BanetError(f'output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}')
    features = TimmFeatures(backbone, (-2, -1) if aux else (-1,), weights=backbone_weights,
                            trainable_layers=trainable_layers, norm=norm, output_stride=output_stride,
                            **dict(backbone_kwargs or {}))
    channels = features.channels
    if arch == 'deeplabv3':
        head: nn.Module = DeepLabHead(channels[-1], num_classes, atrous_rates=_ATROUS_RATES[output_stride])
    else:
        head = FCNHead(channels[-1], num_classes)
    aux_head = FCNHead(channels[-2], num_classes) if aux else None
    return (DeepLabV3 if arch == 'deeplabv3' else FCN)(DenseBackbone(features), head, aux_head)
