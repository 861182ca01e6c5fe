"""Image classification over the run layer: typed configs, data, the classification task, validation."""
from ..runs import Precision, resolve_precision  # re-exported: banet.train.Precision stays
from .options import DataOptions, TrainConfig, ValidateConfig
from .trainer import ClassifyTask, train
from .validator import validate

__all__ = ['DataOptions', 'TrainConfig', 'ValidateConfig', 'ClassifyTask', 'Precision', 'resolve_precision',
           'train', 'validate']
