"""Training and evaluation of banet (and any timm) models: typed configs, data, engine, checkpoints, DDP."""
from .options import DataOptions, TrainConfig, ValidateConfig
from .precision import Precision, resolve_precision
from .trainer import train
from .validator import validate

__all__ = ['DataOptions', 'TrainConfig', 'ValidateConfig', 'Precision', 'resolve_precision', 'train', 'validate']
