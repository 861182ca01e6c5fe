"""Bridge-attention backbones in torchvision's detectors, with COCO metrics and an offline demo set."""
from ..dense import DataError, TimmFeatures, WeightsReport, build_loader, coco_paths, load_coco
from .backbone import TimmFPN
from .builders import ARCHS, create_detector
from .checkpoint import detector_config, load_detector
from .data import CocoDetectionDataset, train_transforms
from .evaluate import evaluate_detector, to_coco_results
from .metrics import coco_metrics
from .options import DetectTrainConfig, DetectValidateConfig
from .predict import detect_files
from .scenes import CATEGORIES, make_scenes, read_idx
from .trainer import DetectTask, train_detector
from .validate import validate_detector

__all__ = [
    'ARCHS', 'CATEGORIES', 'CocoDetectionDataset', 'DataError', 'TimmFPN', 'TimmFeatures', 'WeightsReport',
    'build_loader', 'coco_metrics', 'coco_paths', 'create_detector', 'detector_config', 'evaluate_detector',
    'load_coco', 'make_scenes', 'read_idx', 'to_coco_results', 'train_transforms', 'DetectTask',
    'DetectTrainConfig', 'DetectValidateConfig', 'detect_files', 'load_detector', 'train_detector',
    'validate_detector',
]
