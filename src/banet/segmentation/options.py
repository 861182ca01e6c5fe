"""The typed configs of ``banet segment train`` / ``validate``: every option's name, type, default, help and kind.

Defaults follow torchvision's semantic segmentation reference (``references/segmentation``): images resized to a
random shorter side in [0.5, 2] × 520 px, flipped, cropped to 480 px; SGD with momentum 0.9, weight decay 1e-4, a
polynomial (power 0.9) decay per update, 30 epochs, trained batch norms, the auxiliary loss at weight 0.5.
The data and backbone options are those every COCO-layout command shares (:mod:`banet.dense.options`), the
machine, run and optimiser options the run layer's.
"""
from dataclasses import dataclass
from typing import Optional

from ..config import option
from ..dense.features import NORMS
from ..dense.options import DATA, MODEL, OPT, CheckpointOptions, CocoOptions, CocoTrainOptions
from ..errors import BanetError
from .builders import ARCHS, OUTPUT_STRIDES

__all__ = ['SegmentTrainConfig', 'SegmentValidateConfig']


@dataclass
class SegmentTrainConfig(CocoTrainOptions):
    """Everything :func:`banet.segmentation.train_segmenter` needs."""
    arch: str = option('deeplabv3', 'torchvision segmenter', choices=ARCHS, group=MODEL)
    output_stride: int = option(8, 'backbone output stride (dilated last stages)', choices=OUTPUT_STRIDES,
                                group=MODEL)
    aux: bool = option(True, 'auxiliary FCN head on the second-to-last stage, its loss at weight 0.5', group=MODEL)
    trainable_layers: Optional[int] = option(None, 'backbone stages trained, counted from the last (default: all)',
                                             group=MODEL)
    norm: str = option('bn', 'backbone norms: bn (trained) or frozen (BatchNorm2d and the bridges\' BatchNorm1d)',
                       choices=NORMS, group=MODEL)
    batch_size: int = option(4, 'training images per batch and process (evaluation: one image at a time)',
                             flags=('-b',), group=DATA)
    base_size: int = option(520, 'shorter image side: evaluation resizes to it, training to a random '
                                 '0.5-2 times it', group=DATA)
    crop_size: int = option(480, 'training crop (padded with the ignore label where the image is smaller)',
                            group=DATA)
    hflip: float = option(0.5, 'horizontal flip probability', group=DATA)
    lr: float = option(0.01, 'peak learning rate (torchvision\'s COCO recipe: 0.02 at batch 32)', group=OPT)
    epochs: int = option(30, 'epochs', group=OPT)
    sched: str = option('poly', 'timm scheduler, stepped per update: poly (to 0, power --poly-power) or cosine',
                        choices=('poly', 'cosine'), group=OPT)
    poly_power: float = option(0.9, 'poly: the power of the decay', group=OPT)
    warmup_epochs: float = option(0.0, 'linear warmup epochs, stepped per update (0.5: half an epoch)', group=OPT)
    warmup_lr: float = option(1e-4, 'learning rate at the start of the warmup', group=OPT)

    @property
    def decay_rate(self) -> float:
        """timm's name of the poly schedule's power (what ``scheduler_kwargs`` reads)."""
        return self.poly_power

    min_lr = 0.0  # the poly schedule decays to 0 (torchvision's reference); not an option

    def check(self) -> None:
        super().check()
        if self.base_size < 1 or self.crop_size < 1:
            raise BanetError('--base-size and --crop-size must be at least 1')
        if self.batch_size < 2 and (self.arch == 'deeplabv3' or self.norm == 'bn'):
            raise BanetError('--batch-size 1 cannot train batch norms over one value per channel (DeepLabV3\'s '
                             'image pooling, the bridges\' BatchNorm1d): use --batch-size 2 or more')


@dataclass
class SegmentValidateConfig(CheckpointOptions, CocoOptions):
    """Everything :func:`banet.segmentation.validate_segmenter` needs (images are evaluated one at a time)."""
    trainer = 'banet segment train'
