"""banet model families; importing this registers every model in timm's registry."""
from ._resnet import BanetResNet, check_input_channels
from .ba_resnet import BABasicBlock, BABottleneck, create_ba_resnet
from .cifar_resnet import CifarResNet

__all__ = ['BanetResNet', 'check_input_channels', 'BABasicBlock', 'BABottleneck', 'create_ba_resnet', 'CifarResNet']
