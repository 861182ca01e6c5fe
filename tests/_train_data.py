"""Generated datasets for the training tests: tiny Fashion-MNIST-format IDX files and a PNG image folder."""
import gzip
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack('>HBB', 0, 0x08, array.ndim) + struct.pack(f'>{array.ndim}I', *array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _images(labels: np.ndarray, rng: np.random.Generator, size: int, chans: int) -> np.ndarray:
    """Noise plus a bright bar whose row depends on the class, so a model can learn something."""
    x = rng.integers(0, 60, (len(labels), chans, size, size))
    for i, c in enumerate(labels):
        x[i, :, 2 + 2 * c:4 + 2 * c, 4:size - 4] = 230
    return x.squeeze(1) if chans == 1 else x


def make_fashion_mnist(root: Path, n_train: int = 64, n_test: int = 32, seed: int = 0) -> Path:
    """The four Fashion-MNIST .gz files (28x28, 10 classes) with generated content."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (('train', n_train), ('t10k', n_test)):
        labels = np.arange(n) % 10
        _write_idx(root / f'{split}-images-idx3-ubyte.gz', _images(labels, rng, 28, 1))
        _write_idx(root / f'{split}-labels-idx1-ubyte.gz', labels)
    return root


def make_image_folder(root: Path, classes: int = 3, per_class: int = 6, size: int = 24, seed: int = 0) -> Path:
    """root/train/<class>/*.png and root/val/<class>/*.png."""
    rng = np.random.default_rng(seed)
    for split in ('train', 'val'):
        for c in range(classes):
            folder = root / split / f'class{c}'
            folder.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(_images(np.full(per_class, c), rng, size, 3)):
                Image.fromarray(img.transpose(1, 2, 0).astype(np.uint8)).save(folder / f'{i}.png')
    return root


class Crash(Exception):
    """The failure :func:`crash_in_epoch` injects."""


def crash_in_epoch(monkeypatch, epoch: int = 2):
    """Make banet's training loop raise :class:`Crash` when it starts ``epoch``; returns the real epoch function."""
    from banet.runs import loop as trainer
    real = trainer.train_one_epoch

    def crashing(n, *args, **kwargs):
        if n == epoch:
            raise Crash()
        return real(n, *args, **kwargs)
    monkeypatch.setattr(trainer, 'train_one_epoch', crashing)
    return real


def train_config(*argv: str):
    """The TrainConfig that ``banet train ARGV`` would run."""
    from banet.cli import build_parser
    from banet.cli._options import config_from_args
    from banet.train import TrainConfig
    return config_from_args(TrainConfig, build_parser().parse_args(['train', *argv]))
