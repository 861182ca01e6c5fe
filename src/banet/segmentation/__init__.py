"""Bridge-attention backbones in torchvision's DeepLabV3 and FCN, with COCO-layout semantic masks and mIoU."""
from .builders import ARCHS, OUTPUT_STRIDES, DenseBackbone, create_segmenter
from .checkpoint import load_segmenter, segmenter_config
from .data import IGNORE_INDEX, CocoSegmentationDataset, eval_transforms, semantic_mask, train_transforms
from .evaluate import evaluate_segmenter
from .loss import SegmentationLoss
from .metrics import SegmentationMetric, metrics_from_confusion, named_iou
from .options import SegmentTrainConfig, SegmentValidateConfig
from .predict import palette, segment_files
from .trainer import SegmentTask, train_segmenter
from .validate import validate_segmenter

__all__ = ['ARCHS', 'IGNORE_INDEX', 'OUTPUT_STRIDES', 'CocoSegmentationDataset', 'DenseBackbone', 'SegmentationLoss',
           'SegmentationMetric', 'SegmentTask', 'SegmentTrainConfig', 'SegmentValidateConfig', 'create_segmenter', 'eval_transforms',
           'evaluate_segmenter', 'load_segmenter', 'metrics_from_confusion', 'named_iou', 'palette', 'segment_files',
           'segmenter_config', 'semantic_mask', 'train_segmenter', 'train_transforms', 'validate_segmenter']
