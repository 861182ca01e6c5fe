"""Bridge-attention backbones in torchvision's detectors, with COCO data, COCO metrics and an offline demo set."""
try:
    import pycocotools  # noqa: F401  (a clear message when the optional dependency is missing)
except ImportError as e:
    raise ImportError("banet.detection needs pycocotools: pip install 'banet[detection]'") from e

from .backbone import TimmFPN
from .builders import ARCHS, create_detector
from .data import (CocoDetectionDataset, build_loader, coco_paths, collate_detection, load_coco, semantic_mask,
                   train_transforms)
from .errors import DataError
from .evaluate import evaluate_detector, to_coco_results
from .features import TimmFeatures, WeightsReport
from .metrics import coco_metrics
from .options import DetectTrainConfig, DetectValidateConfig
from .predict import detect_files
from .scenes import CATEGORIES, make_scenes, read_idx
from .trainer import DetectTask, load_detector, train_detector, validate_detector

__all__ = [
    'ARCHS', 'CATEGORIES', 'CocoDetectionDataset', 'DataError', 'TimmFPN', 'TimmFeatures', 'WeightsReport',
    'build_loader', 'coco_metrics', 'coco_paths', 'collate_detection', 'create_detector', 'evaluate_detector',
    'load_coco', 'make_scenes', 'read_idx', 'semantic_mask', 'to_coco_results', 'train_transforms', 'DetectTask',
    'DetectTrainConfig', 'DetectValidateConfig', 'detect_files', 'load_detector', 'train_detector',
    'validate_detector',
]
