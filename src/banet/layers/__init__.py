"""Layers of banet: one idea per file."""
from .bridge_attention import BridgeAttention, FusedBridgeAttention, check_trainable_batch
from .bridge_pool import bridge_pool
from .bridged_norm import bridged_norm
from .channel_gate import channel_gate
from .frozen_norm import FrozenBatchNorm1d, freeze_norms

__all__ = ['bridge_pool', 'bridged_norm', 'channel_gate', 'BridgeAttention', 'FusedBridgeAttention', 'check_trainable_batch', 'FrozenBatchNorm1d', 'freeze_norms']
