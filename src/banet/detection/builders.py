"""torchvision detectors (Faster/Mask R-CNN, RetinaNet, FCOS) on a timm backbone with an FPN.

Faster R-CNN: Ren et al., NeurIPS 2015. Mask R-CNN: He et al., ICCV 2017. RetinaNet: Lin et al., *Focal Loss for
Dense Object Detection*, ICCV 2017. FCOS: Tian et al., *FCOS: Fully Convolutional One-Stage Object Detection*,
ICCV 2019.
"""
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from ..errors import BanetError
from .backbone import TimmFPN

__all__ = ['ARCHS', 'create_detector']

ARCHS = ('fasterrcnn', 'maskrcnn', 'retinanet', 'fcos')


def _rcnn_kwargs(backbone: TimmFPN, arch: str) -> dict[str, Any]:
    """torchvision's R-CNN defaults, sized to the backbone's levels: anchors 8x the stride, RoIAlign 7 (masks 14)."""
    kwargs: dict[str, Any] = dict(
        rpn_anchor_generator=AnchorGenerator(tuple((8 * s,) for s in backbone.strides),
                                             ((0.5, 1.0, 2.0),) * len(backbone.strides)),
        box_roi_pool=MultiScaleRoIAlign(backbone.level_names, output_size=7, sampling_ratio=2))
    if arch == 'maskrcnn':
        kwargs['mask_roi_pool'] = MultiScaleRoIAlign(backbone.level_names, output_size=14, sampling_ratio=2)
    return kwargs


def _retinanet_anchors(backbone: TimmFPN) -> AnchorGenerator:
    """torchvision's RetinaNet anchors: 4x the stride at three octave scales, three aspect ratios."""
    sizes = tuple(tuple(int(4 * s * 2 ** (k / 3)) for k in range(3)) for s in backbone.strides)
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


def _fcos_anchors(backbone: TimmFPN) -> AnchorGenerator:
    """torchvision's FCOS anchor points: one per location, of the level's stride."""
    return AnchorGenerator(tuple((s,) for s in backbone.strides), ((1.0,),) * len(backbone.strides))


def create_detector(arch: str, backbone: str = 'ba_resnet50', num_classes: int = 91, *,
                    backbone_weights: Optional[Mapping[str, torch.Tensor]] = None, trainable_layers: int = 3,
                    norm: str = 'frozen', min_size: int = 800, max_size: int = 1333, fpn_channels: int = 256,
                    returned_stages: Optional[Sequence[int]] = None,
                    backbone_kwargs: Optional[Mapping[str, Any]] = None, **detector_kwargs: Any) -> nn.Module:
    """A torchvision ``FasterRCNN``/``MaskRCNN``/``RetinaNet``/``FCOS`` over ``TimmFPN(backbone)``.

    ``num_classes`` counts the background (COCO category ids: 91). ``backbone_weights`` is a classification
    state dict of ``timm.create_model(backbone)``; the classifier is dropped and missing/unexpected keys are
    logged and kept in ``model.backbone.weights_report``. ``trainable_layers`` (0 to the backbone's stage count,
    5 for ResNets) and ``norm`` ('frozen' or 'bn') are :class:`~banet.dense.features.TimmFeatures`'.
    ``returned_stages`` defaults to the last four timm stages for R-CNNs and the last three (+P6, P7) for
    RetinaNet/FCOS, as torchvision. Anchors and RoI poolers follow torchvision's defaults for the backbone's
    levels, and the image normalisation the backbone's pretrained cfg (mean/std); ``detector_kwargs`` (e.g.
    ``rpn_anchor_generator``, ``box_detections_per_img``, ``image_mean``) go to the torchvision class.
    """
    if arch not in ARCHS:
        raise BanetError(f"unknown detector '{arch}', expected one of {ARCHS}")
    rcnn = arch in ('fasterrcnn', 'maskrcnn')
    if returned_stages is None:
        returned_stages = (-4, -3, -2, -1) if rcnn else (-3, -2, -1)
    fpn = TimmFPN(backbone, returned_stages=returned_stages, extra='maxpool' if rcnn else 'p6p7',
                  fpn_channels=fpn_channels, trainable_layers=trainable_layers, norm=norm,
                  weights=backbone_weights, **dict(backbone_kwargs or {}))
    cfg = fpn.features.body.pretrained_cfg
    defaults: dict[str, Any] = dict(image_mean=list(cfg['mean']), image_std=list(cfg['std']))
    if rcnn:
        defaults.update(_rcnn_kwargs(fpn, arch))
    else:
        defaults['anchor_generator'] = (_retinanet_anchors if arch == 'retinanet' else _fcos_anchors)(fpn)
    kwargs = {**defaults, **detector_kwargs}
    cls = dict(fasterrcnn=FasterRCNN, maskrcnn=MaskRCNN, retinanet=RetinaNet, fcos=FCOS)[arch]
    return cls(fpn, num_classes, min_size=min_size, max_size=max_size, **kwargs)
