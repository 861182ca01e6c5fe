"""What detection and segmentation share: COCO-layout reading and checks, images, timm features, validate/predict."""
try:
    import pycocotools  # noqa: F401  (a clear message when the optional dependency is missing)
except ImportError as e:
    raise ImportError('the dense tasks need pycocotools: pip install \'banet[detection]\'') from e

from .coco import check_coco, coco_paths, load_coco, read_sample
from .errors import DataError
from .features import NORMS, TimmFeatures, WeightsReport
from .images import read_image
from .loader import build_loader, collate_lists, eval_shard
from .predict import draw_files
from .validate import validate_checkpoint

__all__ = ['DataError', 'NORMS', 'TimmFeatures', 'WeightsReport', 'build_loader', 'check_coco', 'coco_paths',
           'collate_lists', 'draw_files', 'eval_shard', 'load_coco', 'read_image', 'read_sample',
           'validate_checkpoint']
