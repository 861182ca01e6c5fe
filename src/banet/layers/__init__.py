"""Layers of banet: one idea per file."""
from .bridge_attention import BridgeAttention, check_trainable_batch
from .frozen_norm import FrozenBatchNorm1d, freeze_norms

__all__ = ['BridgeAttention', 'check_trainable_batch', 'FrozenBatchNorm1d', 'freeze_norms']
