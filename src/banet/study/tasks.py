"""The tasks a study drives: each one's config class, trainer, the option a variant sets and the metric reported.

``task: classify`` (the default) trains timm models (variants name ``model``) and reports test top-1;
``task: detect`` and ``task: segment`` train a torchvision detector or segmenter over each variant's backbone
(variants name ``backbone``) and report box AP (and AP50) or mean IoU (and pixel accuracy). The detection and
segmentation packages are imported only when a study asks for them.
"""
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple

from ..errors import BanetError

__all__ = ['StudyTask', 'TASKS', 'study_task']


@dataclass(frozen=True)
class StudyTask:
    """What a study needs of a task (names of metrics-CSV columns and result-file keys)."""
    name: str
    module: str          # the package holding config and trainer
    config_name: str
    train_name: str
    variant_key: str     # the option each variant sets: 'model' or 'backbone'
    metric: str          # metrics.csv column of the reported metric (highest is best)
    second: str          # a second column reported beside it
    label: str           # e.g. 'top-1 (%)'
    second_label: str    # e.g. 'top-5 (%)'
    unit: str            # of a difference: 'pp' or ''
    digits: int          # decimals shown
    extras: Tuple[str, ...] = ()  # further final-epoch metrics kept in each result file and reported
    metrics_note: str = ''  # how the task computes its metrics; where set, the report tables all of them ± std

    @property
    def final_key(self) -> str:
        """The result-file key of the final-epoch value (``test_top1`` for classification)."""
        return 'test_' + self.metric.removeprefix('val_')

    @property
    def second_key(self) -> str:
        return 'test_' + self.second.removeprefix('val_')

    @property
    def extra_keys(self) -> Tuple[str, ...]:
        """The result-file keys of :attr:`extras` (``test_bbox_AP75`` ...)."""
        return tuple('test_' + k for k in self.extras)

    @property
    def config(self) -> type:
        return getattr(importlib.import_module(self.module), self.config_name)

    @property
    def train(self) -> Callable[[Any], Dict[str, Any]]:
        return getattr(importlib.import_module(self.module), self.train_name)


TASKS = {
    'classify': StudyTask('classify', 'banet.train', 'TrainConfig', 'train', 'model', 'val_top1', 'val_top5',
                          'top-1 (%)', 'top-5 (%)', 'pp', 2),
    'detect': StudyTask('detect', 'banet.detection', 'DetectTrainConfig', 'train_detector', 'backbone', 'bbox_AP',
                        'bbox_AP50', 'box AP', 'AP50', '', 3, ('bbox_AP75', 'bbox_APs', 'bbox_APm'),
                        "COCO's `COCOeval`; -1 where a size class has no object"),
    'segment': StudyTask('segment', 'banet.segmentation', 'SegmentTrainConfig', 'train_segmenter', 'backbone',
                         'miou', 'pixel_acc', 'mIoU', 'pixel accuracy', '', 3, (),
                         'one confusion matrix over every pixel of the evaluation split, background a class, '
                         'label 255 ignored'),
}


def study_task(name: Any, where: str) -> StudyTask:
    """The task ``name`` of a study config (BanetError naming the choices otherwise)."""
    if name not in TASKS:
        raise BanetError(f'{where}: task must be one of {", ".join(TASKS)}, got {name!r}')
    return TASKS[name]
