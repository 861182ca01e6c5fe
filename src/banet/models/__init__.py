"""banet model families; importing this registers every model in timm's registry."""
from ._resnet import BanetResNet, check_input_channels
from ._mbconv import BAInvertedResidual
from .ba_convnext import BAConvNeXt, BAConvNeXtBlock
from .ba_efficientnet import create_ba_efficientnet
from . import ba_mobilenetv3  # noqa: F401  (registers ba_mobilenetv3_*)
from .ba_regnet import BARegNet, BARegNetBottleneck
from .ba_resnet import BABasicBlock, BABottleneck, create_ba_resnet
from .ba_swin import BASwinTransformer, BASwinTransformerBlock
from .cifar_resnet import CifarResNet
from . import eca_resnet  # noqa: F401  (registers ecaresnet18/34, timm has none below depth 26)

# the modules whose models `banet profile` lists by default (timm's `list_models(module=...)` names)
MODEL_MODULES = (
    'ba_resnet', 'cifar_resnet', 'ba_mobilenetv3', 'ba_efficientnet', 'ba_convnext', 'ba_swin', 'ba_regnet',
    'eca_resnet',
)

__all__ = [
    'BanetResNet', 'check_input_channels', 'BABasicBlock', 'BABottleneck', 'create_ba_resnet', 'CifarResNet',
    'BAInvertedResidual', 'create_ba_efficientnet', 'BAConvNeXt', 'BAConvNeXtBlock', 'BASwinTransformer',
    'BASwinTransformerBlock', 'BARegNet', 'BARegNetBottleneck', 'MODEL_MODULES',
]
