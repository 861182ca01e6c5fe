"""Training and evaluation of banet (and any timm) models: data, engine, checkpoints, metrics, DDP."""
from .trainer import train
from .validator import validate

__all__ = ['train', 'validate']
