"""Bridge-attention backbones in torchvision's DeepLabV3 and FCN, with COCO-layout semantic masks and mIoU."""
from .builders import ARCHS, DenseBackbone, create_segmenter
from .data import CocoSegmentationDataset
from .evaluate import evaluate_segmenter
from .metrics import SegmentationMetric, metrics_from_confusion

__all__ = ['ARCHS', 'CocoSegmentationDataset', 'DenseBackbone', 'SegmentationMetric', 'create_segmenter',
           'evaluate_segmenter', 'metrics_from_confusion']
