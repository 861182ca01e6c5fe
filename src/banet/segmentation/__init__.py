"""Bridge-attention backbones in torchvision's DeepLabV3 and FCN, with COCO-layout semantic masks and mIoU."""
from .builders import ARCHS, OUTPUT_STRIDES, DenseBackbone, create_segmenter
from .data import CocoSegmentationDataset, eval_transforms, train_transforms
from .evaluate import evaluate_segmenter
from .loss import SegmentationLoss
from .metrics import SegmentationMetric, metrics_from_confusion, named_iou
from .options import SegmentTrainConfig, SegmentValidateConfig
from .predict import palette, segment_files
from .trainer import SegmentTask, load_segmenter, segmenter_config, train_segmenter, validate_segmenter

__all__ = ['ARCHS', 'OUTPUT_STRIDES', 'CocoSegmentationDataset', 'DenseBackbone', 'SegmentationLoss',
           'SegmentationMetric', 'SegmentTask', 'SegmentTrainConfig', 'SegmentValidateConfig', 'create_segmenter',
           'eval_transforms', 'evaluate_segmenter', 'load_segmenter', 'metrics_from_confusion', 'named_iou', 'palette', 'segment_files',
           'segmenter_config', 'train_segmenter', 'train_transforms', 'validate_segmenter']
