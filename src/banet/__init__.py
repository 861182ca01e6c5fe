"""banet: bridge attention (BA-Net v1 and v2) inside timm.

``import banet`` registers the models, so ``timm.create_model('ba_resnet50')`` works. The floors, each a package:
layers -> models -> io -> train (and detection/segmentation) -> measure, deploy, study -> cli.
"""
from .errors import BanetError
from .io import load_model, load_pretrained, read_checkpoint, save_pretrained
from .layers import BridgeAttention, FrozenBatchNorm1d, FusedBridgeAttention, freeze_norms
from .models import BABasicBlock, BABottleneck, BanetResNet, CifarResNet
from .models.fusion import fuse
from .models.official import convert_official, detect_layout
from .models.retrofit import add_bridge_attention

__version__ = '0.2.0'

__all__ = [
    'BridgeAttention', 'FusedBridgeAttention', 'FrozenBatchNorm1d', 'freeze_norms', 'fuse', 'BABasicBlock',
    'BABottleneck', 'BanetResNet', 'CifarResNet', 'add_bridge_attention', 'convert_official', 'detect_layout',
    'load_model', 'load_pretrained', 'read_checkpoint', 'save_pretrained', 'BanetError', '__version__',
]
