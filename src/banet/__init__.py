"""banet: bridge attention (BA-Net v1 and v2) inside timm.

``import banet`` registers the models, so ``timm.create_model('ba_resnet50')`` works.
"""
from .convert import convert_official, detect_layout
from .fusion import fuse
from .hub import load_pretrained, save_pretrained
from .layers import BridgeAttention, FrozenBatchNorm1d, FusedBridgeAttention, freeze_norms
from .models import BABasicBlock, BABottleneck, BanetResNet, CifarResNet
from .retrofit import add_bridge_attention

__version__ = '0.1.0'

__all__ = [
    'BridgeAttention', 'FusedBridgeAttention', 'FrozenBatchNorm1d', 'freeze_norms', 'fuse', 'BABasicBlock', 'BABottleneck', 'BanetResNet',
    'CifarResNet', 'add_bridge_attention', 'convert_official', 'detect_layout', 'load_pretrained',
    'save_pretrained', '__version__',
]
