"""Small-input ResNets for 28-32 px images (CIFAR, Fashion-MNIST), with and without attention.

The classic CIFAR ResNet of "Deep Residual Learning for Image Recognition" (He et al., 2016, section 4.2):
a 3x3 stride-1 stem, no max-pool, three stages of basic blocks of width 16/32/64 and depth 6n+2, here with
projection (1x1 conv + BN) shortcuts. One name per attention: none, SE, ECA and CBAM (timm's own layers), BAv1
and BAv2.
"""
from typing import Any, Dict, Tuple

from torch import nn

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock

from ._resnet import BanetResNet
from .ba_resnet import BABasicBlock

__all__ = ['CifarResNet']

_CIFAR_MEAN = (0.5, 0.5, 0.5)
_CIFAR_STD = (0.25, 0.25, 0.25)


class CifarResNet(BanetResNet):
    """timm's ResNet with the CIFAR stem (3x3 conv, stride 1, no max-pool) and one to four stages.

    Feature reductions are 1 (stem), then 1, 2, 4, … per stage. ``output_stride`` is not supported.
    """

    def __init__(
            self,
            block: type,
            layers: Tuple[int, ...],
            channels: Tuple[int, ...] = (16, 32, 64),
            in_chans: int = 3,
            stem_width: int = 16,
            output_stride: int = 32,
            **kwargs: Any,
    ) -> None:
        if output_stride != 32:
            raise ValueError('CIFAR ResNets do not support output_stride; leave it at 32')
        if kwargs.get('stem_type') or kwargs.get('replace_stem_pool'):
            raise ValueError('CIFAR ResNets have a fixed 3x3 stem: stem_type and replace_stem_pool are not supported')
        if stem_width % 2:
            raise ValueError(f'stem_width must be even, got {stem_width}')
        # timm's deep stem is the only one whose width is configurable (2 * stem_width); build with it, then swap
        # its three convolutions for the single stride-1 3x3 conv of the CIFAR design.
        super().__init__(
            block, layers, channels=channels, in_chans=in_chans, stem_type='deep', stem_width=stem_width // 2,
            **kwargs)
        dd = {'device': self.bn1.weight.device, 'dtype': self.bn1.weight.dtype}
        self.conv1 = nn.Conv2d(in_chans, stem_width, kernel_size=3, stride=1, padding=1, bias=False, **dd)
        nn.init.kaiming_normal_(self.conv1.weight, mode='fan_out', nonlinearity='relu')
        self.maxpool = nn.Identity()
        self.feature_info[0]['reduction'] = 1
        for info in self.feature_info[1:]:
            info['reduction'] //= 4


def _create(variant: str, pretrained: bool, depth: int, block: type, **kwargs: Any) -> CifarResNet:
    if (depth - 2) % 6:
        raise ValueError(f'CIFAR ResNet depth must be 6n+2, got {depth}')
    n = (depth - 2) // 6
    kwargs.setdefault('zero_init_last', False)  # every variant starts from the same (classic) initialisation
    return build_model_with_cfg(
        CifarResNet, variant, pretrained, block=block, layers=(n, n, n),
        feature_cfg=dict(out_indices=(0, 1, 2, 3)), **kwargs)


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        'url': '', 'num_classes': 10, 'input_size': (3, 32, 32), 'pool_size': (8, 8), 'crop_pct': 1.0,
        'interpolation': 'bilinear', 'mean': _CIFAR_MEAN, 'std': _CIFAR_STD,
        'first_conv': 'conv1', 'classifier': 'fc', 'license': 'apache-2.0', **kwargs,
    }


_ATTN = {'': {}, 'se': {'attn_layer': 'se'}, 'eca': {'attn_layer': 'eca'}, 'cbam': {'attn_layer': 'cbam'}}
default_cfgs = generate_default_cfgs({
    f'{prefix}resnet{d}_cifar': _cfg() for d in (20, 56) for prefix in ('', 'se', 'eca', 'cbam', 'bav1_', 'ba_')
})


def _plain(variant: str, depth: int, attn: str, pretrained: bool, **kwargs: Any) -> CifarResNet:
    block_args = dict(_ATTN[attn], **(kwargs.pop('block_args', None) or {}))
    return _create(variant, pretrained, depth, BasicBlock, block_args=block_args, **kwargs)


def _bridged(variant: str, depth: int, version: str, pretrained: bool, **kwargs: Any) -> CifarResNet:
    block_args = dict(ba_version=kwargs.pop('ba_version', version))
    if 'ba_reduction' in kwargs:
        block_args['ba_reduction'] = kwargs.pop('ba_reduction')
    block_args.update(kwargs.pop('block_args', None) or {})
    return _create(variant, pretrained, depth, BABasicBlock, block_args=block_args, **kwargs)


@register_model
def resnet20_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet-20 for 32 px input."""
    return _plain('resnet20_cifar', 20, '', pretrained, **kwargs)


@register_model
def seresnet20_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """SE-ResNet-20 (timm's SEModule) for 32 px input."""
    return _plain('seresnet20_cifar', 20, 'se', pretrained, **kwargs)


@register_model
def ecaresnet20_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ECA-ResNet-20 (timm's EcaModule) for 32 px input."""
    return _plain('ecaresnet20_cifar', 20, 'eca', pretrained, **kwargs)


@register_model
def cbamresnet20_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """CBAM-ResNet-20 (timm's CbamModule: channel then spatial attention) for 32 px input."""
    return _plain('cbamresnet20_cifar', 20, 'cbam', pretrained, **kwargs)


@register_model
def bav1_resnet20_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """BAv1 ResNet-20 for 32 px input."""
    return _bridged('bav1_resnet20_cifar', 20, 'v1', pretrained, **kwargs)


@register_model
def ba_resnet20_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """BAv2 ResNet-20 for 32 px input."""
    return _bridged('ba_resnet20_cifar', 20, 'v2', pretrained, **kwargs)


@register_model
def resnet56_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet-56 for 32 px input."""
    return _plain('resnet56_cifar', 56, '', pretrained, **kwargs)


@register_model
def seresnet56_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """SE-ResNet-56 (timm's SEModule) for 32 px input."""
    return _plain('seresnet56_cifar', 56, 'se', pretrained, **kwargs)


@register_model
def ecaresnet56_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ECA-ResNet-56 (timm's EcaModule) for 32 px input."""
    return _plain('ecaresnet56_cifar', 56, 'eca', pretrained, **kwargs)


@register_model
def cbamresnet56_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """CBAM-ResNet-56 (timm's CbamModule: channel then spatial attention) for 32 px input."""
    return _plain('cbamresnet56_cifar', 56, 'cbam', pretrained, **kwargs)


@register_model
def bav1_resnet56_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """BAv1 ResNet-56 for 32 px input."""
    return _bridged('bav1_resnet56_cifar', 56, 'v1', pretrained, **kwargs)


@register_model
def ba_resnet56_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """BAv2 ResNet-56 for 32 px input."""
    return _bridged('ba_resnet56_cifar', 56, 'v2', pretrained, **kwargs)
