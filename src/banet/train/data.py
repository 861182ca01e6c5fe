"""Datasets and loaders: image folders and streamed datasets through timm, small datasets held in memory.

Image folders (``--dataset folder``: ``DIR/train/<class>/*.jpg``, ``DIR/val/...``) and timm's other datasets
(``wds/NAME``: WebDataset shards in ``--data-dir``; ``hfds/NAME``: a Hugging Face dataset, a folder path or a hub
name, cached in ``--data-dir``) are read with timm's transforms (folders through torchvision's ``ImageFolder``,
the others through timm's ``create_dataset``; their libraries come with ``pip install "banet[data]"``). Random-access
sets (folders, ``hfds``) are shuffled and split over processes by torch's samplers; timm's streamed readers
(``wds``) shuffle and split their shards over processes and loader workers themselves, told the rank here. A folder
image that cannot be decoded stops the run with one line naming it. Fashion-MNIST is read from the IDX files of
``--data-dir`` (``.gz`` or not), else of the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``); CIFAR through torchvision. Nothing is downloaded unless the user passes
``--download`` (or names an ``hfds`` hub dataset that is not cached).
"""
import importlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from timm.data import create_dataset, create_transform
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler
from torchvision import datasets

from ..errors import BanetError, MissingFileError
from ..io.idx import read_idx
from .options import DataOptions, TrainConfig
from .tensor_loader import TensorLoader

__all__ = ['DEBIAN_FASHION_MNIST', 'IN_MEMORY', 'DataSpec', 'build_train_loader', 'build_eval_loader',
           'dataset_spec', 'load_in_memory']

DEBIAN_FASHION_MNIST = Path('/usr/share/datasets/fashion-mnist')
IN_MEMORY = {'fashion_mnist': (10, 1, 28), 'cifar10': (10, 3, 32), 'cifar100': (100, 3, 32)}  # classes, chans, px
_FMNIST_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
                 't10k-labels-idx1-ubyte')
_READER_LIBRARIES = {'wds': 'webdataset', 'hfds': 'datasets', 'hfids': 'datasets'}  # timm prefix: its library


@dataclass
class DataSpec:
    """What the model needs to know about a dataset: classes, channels, native size (None: any), class names."""
    num_classes: int
    in_chans: int
    img_size: Optional[int]
    class_names: Optional[Tuple[str, ...]] = None


def _folder_split(cfg: DataOptions, split: str) -> Path:
    if not cfg.data_dir:
        raise BanetError('--dataset folder needs --data-dir DIR (a tree DIR/train/<class>/*.jpg, DIR/val/...)')
    path = Path(cfg.data_dir) / split
    if not path.is_dir():
        raise MissingFileError(f'the image folder {path} does not exist: --data-dir must hold the class folders '
                               f'of each split ({cfg.train_split}/, {cfg.val_split}/)')
    return path


def dataset_spec(cfg: DataOptions, splits: List[str]) -> DataSpec:
    """Check that the data can be found (before any work) and return its classes/channels/size."""
    if cfg.dataset in IN_MEMORY:
        if cfg.dataset == 'fashion_mnist':
            _fashion_mnist_root(cfg.data_dir, cfg.download, probe=True)
        elif not cfg.download:
            _cifar(cfg, train=False)  # raises a clear error if absent
        names = tuple(datasets.FashionMNIST.classes) if cfg.dataset == 'fashion_mnist' else None
        return DataSpec(*IN_MEMORY[cfg.dataset], class_names=names)
    if cfg.streamed:
        _require_library(cfg.dataset)
        if not cfg.num_classes:
            raise BanetError(f'--dataset {cfg.dataset} needs --num-classes (a streamed dataset is not scanned '
                             'for its classes)')
        if not cfg.data_dir and cfg.dataset.startswith('wds/'):
            raise BanetError(f'--dataset {cfg.dataset} needs --data-dir DIR holding the WebDataset shards')
        return DataSpec(cfg.num_classes, cfg.in_chans or 3, None)
    classes = None
    for split in splits:
        found = sorted(p.name for p in _folder_split(cfg, split).iterdir() if p.is_dir())
        if not found:
            raise MissingFileError(f'{_folder_split(cfg, split)} has no class folders')
        if classes is not None and found != classes:
            raise BanetError(f'the class folders of {splits[0]}/ and {split}/ differ')
        classes = found
    return DataSpec(len(classes), 3, None, tuple(classes))


def _has_idx(folder: Path, suffix: str) -> bool:
    return all((folder / (f + suffix)).is_file() for f in _FMNIST_FILES)


def _fashion_mnist_root(data_dir: Optional[str], download: bool, probe: bool = False) -> Tuple[Path, bool]:
    """Where the Fashion-MNIST IDX files are: (folder, whether they are gzipped); torchvision layout also works."""
    candidates = [Path(data_dir)] if data_dir else []
    candidates.append(DEBIAN_FASHION_MNIST)
    for base in candidates:
        for folder in (base, base / 'FashionMNIST' / 'raw'):
            if _has_idx(folder, '.gz'):
                return folder, True
            if _has_idx(folder, ''):
                return folder, False
    if download:
        if not data_dir:
            raise BanetError('--download needs --data-dir DIR to download Fashion-MNIST into')
        if not probe:
            datasets.FashionMNIST(data_dir, train=True, download=True)
            datasets.FashionMNIST(data_dir, train=False, download=True)
            return Path(data_dir) / 'FashionMNIST' / 'raw', False
        return Path(data_dir), False
    where = f'--data-dir {data_dir} nor ' if data_dir else ''
    raise MissingFileError(
        f'Fashion-MNIST not found in {where}{DEBIAN_FASHION_MNIST}. Get it one of three ways: pass --data-dir DIR '
        f'holding {", ".join(f + ".gz" for f in _FMNIST_FILES[:2])}, ... ; or install the Debian package '
        f'(sudo apt-get install dataset-fashion-mnist); or pass --download --data-dir DIR to let torchvision '
        f'download it')


def _fashion_mnist(cfg: DataOptions, train: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    folder, gz = _fashion_mnist_root(cfg.data_dir, cfg.download)
    images, labels = (folder / (name + ('.gz' if gz else '')) for name in _FMNIST_FILES[(0 if train else 2):][:2])
    x = torch.from_numpy(read_idx(images).astype(np.uint8)).unsqueeze(1).contiguous()
    return x, torch.from_numpy(read_idx(labels).astype(np.int64))


def _cifar(cfg: DataOptions, train: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    cls = datasets.CIFAR10 if cfg.dataset == 'cifar10' else datasets.CIFAR100
    if not cfg.data_dir:
        raise BanetError(f'--dataset {cfg.dataset} needs --data-dir DIR (add --download to fetch it there)')
    try:
        ds = cls(cfg.data_dir, train=train, download=cfg.download)
    except RuntimeError as e:
        raise MissingFileError(f'{cfg.dataset} not found in {cfg.data_dir} ({e}); pass --download to let '
                               'torchvision fetch it') from None
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)


def load_in_memory(cfg: DataOptions, train: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """All images of a split as one uint8 (N, C, H, W) tensor and the labels."""
    if cfg.dataset == 'fashion_mnist':
        return _fashion_mnist(cfg, train)
    return _cifar(cfg, train)


def _in_memory(cfg: DataOptions, data_config: Dict[str, Any], train: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_in_memory(cfg, train)
    size = data_config['input_size'][-1]
    return (images if images.shape[-1] == size else _resize_uint8(images, size)), labels


def _read_image(path: str) -> Image.Image:
    """ImageFolder's loader, with an error that names the file (the command line shows it as one line)."""
    try:
        with open(path, 'rb') as f:
            return Image.open(f).convert('RGB')
    except OSError as e:
        raise BanetError(f'cannot read image {path}: {e}') from None


def _require_library(dataset: str) -> None:
    """Import the library behind a timm dataset prefix, or stop with the one install that adds it."""
    module = _READER_LIBRARIES.get(dataset.partition('/')[0].lower())
    if module is None:
        return
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise BanetError(f'--dataset {dataset} needs the {module} package ({e}): pip install "banet[data]"') from e


def _image_dataset(cfg: DataOptions, split: str, train: bool, transform, seed: int = 0, batch_size: int = 1,
                   rank: int = 0, world_size: int = 1):
    """A folder split (an unreadable file stops with its name), or timm's dataset for a ``wds/``, ``hfds/`` name.

    timm's streamed readers take the process's rank from ``torch.distributed``; they are given ``rank`` and
    ``world_size`` here (the same under torchrun) and the loader's worker count, as timm's ``create_loader`` does,
    so that their length (the epoch's steps) is the number of batches the workers yield.
    """
    if not cfg.streamed:
        return datasets.ImageFolder(str(_folder_split(cfg, split)), transform=transform, loader=_read_image)
    _require_library(cfg.dataset)
    ds = create_dataset(cfg.dataset, root=cfg.data_dir, split=split, is_training=train, transform=transform,
                        batch_size=batch_size, seed=seed)
    if isinstance(ds, IterableDataset):
        ds.reader.dist_rank, ds.reader.dist_num_replicas = rank, world_size
        ds.set_loader_cfg(num_workers=cfg.workers)
    if train and cfg.dataset.lower().startswith('wds/'):
        _check_shards(cfg, split, len(ds.reader.split_info.filenames), world_size)
    return ds


def _check_shards(cfg: DataOptions, split: str, shards: int, world_size: int) -> None:
    """timm gives each process's loader workers whole shards: one without a shard would end its epoch early."""
    workers = max(1, cfg.workers)
    if shards < world_size * workers:
        raise BanetError(f'--dataset {cfg.dataset}: the {split} split has {shards} shard(s) for {world_size} '
                         f'process(es) x {workers} loader worker(s), and each reads whole shards: lower --workers '
                         'or write the data into more shards (a multiple of processes x workers, equal in size)')


def build_eval_loader(cfg: DataOptions, data_config: Dict[str, Any], rank: int = 0, world_size: int = 1,
                      device: Optional[torch.device] = None):
    """The evaluation loader of ``cfg.dataset``'s validation split: every image once over all processes, in order."""
    mean, std = data_config['mean'], data_config['std']
    if cfg.dataset in IN_MEMORY:
        images, labels = _in_memory(cfg, data_config, False)
        return TensorLoader(images, labels, cfg.batch_size, mean, std, rank=rank, world_size=world_size,
                            device=device)
    transform = create_transform(
        data_config['input_size'], is_training=False, interpolation=data_config['interpolation'], mean=mean, std=std,
        crop_pct=data_config['crop_pct'], crop_mode=data_config.get('crop_mode', 'center'))
    ds = _image_dataset(cfg, cfg.val_split, False, transform, batch_size=cfg.batch_size, rank=rank,
                        world_size=world_size)
    pin = device is not None and device.type == 'cuda'
    streamed = isinstance(ds, IterableDataset)  # split over processes by timm's reader
    sampler = range(rank, len(ds), world_size) if world_size > 1 and not streamed else None
    return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, pin_memory=pin)


def build_train_loader(cfg: TrainConfig, data_config: Dict[str, Any], rank: int = 0, world_size: int = 1,
                       device: Optional[torch.device] = None):
    """The training loader of ``cfg.dataset``: shuffled by ``cfg.seed``, augmented, the last partial step dropped."""
    mean, std = data_config['mean'], data_config['std']
    if cfg.dataset in IN_MEMORY:
        images, labels = _in_memory(cfg, data_config, True)
        return TensorLoader(
            images, labels, cfg.batch_size, mean, std, train=True, pad=cfg.pad_crop, hflip=cfg.hflip,
            seed=cfg.seed, rank=rank, world_size=world_size, accum_steps=cfg.grad_accum_steps, device=device)
    transform = create_transform(
        data_config['input_size'], is_training=True, scale=cfg.scale, ratio=cfg.ratio, hflip=cfg.hflip,
        color_jitter=cfg.color_jitter, auto_augment=cfg.aa, interpolation=cfg.train_interpolation,
        mean=mean, std=std, re_prob=cfg.reprob, re_mode=cfg.remode)
    ds = _image_dataset(cfg, cfg.train_split, True, transform, seed=cfg.seed, batch_size=cfg.batch_size,
                        rank=rank, world_size=world_size)
    pin = device is not None and device.type == 'cuda'
    generator = torch.Generator().manual_seed(cfg.seed + rank)  # order (one process) and worker seeds
    if isinstance(ds, IterableDataset):  # timm's streamed reader shuffles and shards by process and worker itself
        return DataLoader(ds, batch_size=cfg.batch_size, num_workers=cfg.workers, drop_last=True,
                          generator=generator, pin_memory=pin, worker_init_fn=_seed_worker)
    if world_size > 1:
        sampler = DistributedSampler(ds, world_size, rank, shuffle=True, seed=cfg.seed, drop_last=True)
    else:
        sampler = RandomSampler(ds, generator=generator)
    if len(sampler) < cfg.batch_size * cfg.grad_accum_steps:
        raise BanetError(f'{len(sampler)} training images per process are fewer than one step of '
                         f'{cfg.batch_size * cfg.grad_accum_steps}: lower --batch-size')
    return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=True,
                      generator=generator, pin_memory=pin, worker_init_fn=_seed_worker)


def _seed_worker(worker_id: int) -> None:
    """NumPy and ``random`` in a loader process follow torch's per-worker seed (drawn from the loader's generator)."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


def _resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Pad (when smaller) or resize a uint8 batch to ``size`` px once, before training."""
    h = images.shape[-1]
    if h < size and (size - h) % 2 == 0:
        p = (size - h) // 2
        return torch.nn.functional.pad(images, (p, p, p, p))
    x = torch.nn.functional.interpolate(images.float(), size=(size, size), mode='bilinear', antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8)

