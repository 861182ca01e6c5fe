"""ECA-Net ResNet-18/34 (Wang et al., *ECA-Net: Efficient Channel Attention*, CVPR 2020) at the ImageNet layout.

timm registers ECA ResNets only from depth 26 (``ecaresnet26t``, ``ecaresnet50d``, ...); these are timm's own
``ResNet`` with ``BasicBlock`` and ``attn_layer='eca'`` (a 1-D convolution over the pooled channels, kernel size
from the channel count), so an ECA backbone of the size of ``resnet18``/``ba_resnet18`` can join a comparison.
Like every timm ResNet they default to ``zero_init_last=True``.
"""
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, ResNet

__all__ = ['ecaresnet18', 'ecaresnet34']

default_cfgs = generate_default_cfgs({
    f'ecaresnet{d}': {
        'url': '', 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7), 'crop_pct': 0.875,
        'interpolation': 'bilinear', 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'conv1', 'classifier': 'fc', 'license': 'apache-2.0', 'paper_ids': 'arXiv:1910.03151',
    } for d in (18, 34)
})


def _build(name: str, layers: tuple, pretrained: bool, **kwargs: Any) -> ResNet:
    block_args = {'attn_layer': 'eca', **(kwargs.pop('block_args', None) or {})}
    return build_model_with_cfg(ResNet, name, pretrained, block=BasicBlock, layers=layers, block_args=block_args,
                                **kwargs)


@register_model
def ecaresnet18(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ECA-Net ResNet-18."""
    return _build('ecaresnet18', (2, 2, 2, 2), pretrained, **kwargs)


@register_model
def ecaresnet34(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ECA-Net ResNet-34."""
    return _build('ecaresnet34', (3, 4, 6, 3), pretrained, **kwargs)
