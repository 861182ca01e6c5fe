"""Helpers of the bridged families: blocks bridged in place, timm-based cfgs, build-then-bridge."""
from typing import Any, Callable, Dict, List, Optional, Type

import timm
from torch import nn
from timm.models import load_pretrained

from ..layers import BridgeAttention

__all__ = ['become', 'blocks_of', 'bridge_blocks', 'BridgedModel', 'device_dtype', 'base_cfg', 'build_then_bridge']

# the parts of a timm pretrained cfg that describe the model and its input, not a set of weights
_CFG_KEYS = (
    'input_size', 'test_input_size', 'min_input_size', 'fixed_input_size', 'interpolation', 'crop_pct',
    'test_crop_pct', 'crop_mode', 'mean', 'std', 'num_classes', 'pool_size', 'test_pool_size', 'first_conv',
    'classifier',
)


def device_dtype(module: nn.Module) -> Dict[str, Any]:
    """``device``/``dtype`` keywords matching the module's first parameter (new bridges live beside the block)."""
    p = next(module.parameters())
    return {'device': p.device, 'dtype': p.dtype}


def become(block: nn.Module, cls: Type[nn.Module], bridge: BridgeAttention) -> nn.Module:
    """Make ``block`` an instance of ``cls`` (a bridge subclass of its class) with ``bridge`` as ``block.ba``.

    In place: the block keeps its identity, sub-modules, weights, hooks and place in its parent; only its forward
    changes and the bridge is added. (The bridged classes annotate no attributes in their class bodies: TorchScript
    would take ``ba: BridgeAttention`` for a type it cannot compile.)
    """
    block.__class__ = cls
    block.ba = bridge
    return block


def blocks_of(
        model: nn.Module, block_type: Type[nn.Module], where: Optional[Callable[[nn.Module], bool]] = None,
) -> List[nn.Module]:
    """Every sub-module whose type is exactly ``block_type`` (not a subclass, so bridged blocks are skipped)."""
    return [m for m in model.modules() if type(m) is block_type and (where is None or where(m))]


def bridge_blocks(
        model: nn.Module,
        plain_block: Type[nn.Module],
        ba_block: Type[nn.Module],
        where: Optional[Callable[[nn.Module], bool]] = None,
        **kwargs: Any,
) -> None:
    """Turn every ``plain_block`` of ``model`` (that ``where`` accepts) into ``ba_block`` in place, with
    ``ba_block.from_block(block, **kwargs)``."""
    for block in blocks_of(model, plain_block, where):
        ba_block.from_block(block, **kwargs)


class BridgedModel:
    """Mixin before a timm model class: timm builds the model, then its blocks become bridged ones.

    The subclass names the blocks in two class attributes: ``plain_block`` (timm's block class) and ``ba_block``
    (its bridged subclass, whose ``from_block`` takes ``version`` and ``reduction``). The constructor takes timm's
    arguments plus ``ba_version`` and ``ba_reduction``. For the families whose timm builder fixes the model class,
    :func:`build_then_bridge` does the same.
    """

    def __init__(self, *args: Any, ba_version: str = 'v2', ba_reduction: int = 16, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bridge_blocks(self, self.plain_block, self.ba_block, version=ba_version, reduction=ba_reduction)


def base_cfg(base: str, **kwargs: Any) -> Dict[str, Any]:
    """timm's default pretrained cfg of ``base`` (input size, crop, mean/std, ...) without any weights."""
    cfg = timm.get_pretrained_cfg(base).to_dict()
    return {'url': '', **{k: cfg[k] for k in _CFG_KEYS if k in cfg}, 'license': 'apache-2.0', **kwargs}


def build_then_bridge(
        create: Callable[..., nn.Module],
        variant: str,
        pretrained: bool,
        add_bridges: Callable[[nn.Module], None],
        **kwargs: Any,
) -> nn.Module:
    """Build ``variant`` with timm's own ``create`` function, bridge it, then load pretrained weights into it.

    For families whose timm builder fixes the model class (MobileNetV3, EfficientNet): the weights, if any, are
    loaded only after the bridges exist, so a bridged checkpoint loads strictly.
    """
    features_only = kwargs.get('features_only', False)
    model = create(variant, pretrained=False, **kwargs)
    add_bridges(model)
    if pretrained:
        load_pretrained(
            model, num_classes=0 if features_only else model.num_classes, in_chans=kwargs.get('in_chans', 3),
            strict=not features_only)
    return model
