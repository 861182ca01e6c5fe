"""Layers of banet: one idea per file."""
from .bridge_attention import BridgeAttention, FusedBridgeAttention, check_trainable_batch
from .frozen_norm import FrozenBatchNorm1d, freeze_norms

__all__ = ['BridgeAttention', 'FusedBridgeAttention', 'check_trainable_batch', 'FrozenBatchNorm1d', 'freeze_norms']
