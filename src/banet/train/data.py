"""Datasets and loaders: an ImageNet-layout folder (timm transforms, PIL) or a torchvision dataset held in memory.

Fashion-MNIST comes from the IDX ``.gz`` files of ``--data-dir``, else of the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), else torchvision downloads it with ``--download``.
Nothing is downloaded unless the user passes ``--download``.
"""
import gzip
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from timm.data import create_transform
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from torchvision import datasets

from .tensor_loader import TensorLoader

__all__ = ['DEBIAN_FASHION_MNIST', 'IN_MEMORY', 'DataSpec', 'build_loader', 'dataset_spec',
           'load_in_memory']

DEBIAN_FASHION_MNIST = Path('/usr/share/datasets/fashion-mnist')
IN_MEMORY = {'fashion_mnist': (10, 1, 28), 'cifar10': (10, 3, 32), 'cifar100': (100, 3, 32)}  # classes, chans, px
_FMNIST_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
                 't10k-labels-idx1-ubyte')


@dataclass
class DataSpec:
    """What the model needs to know about a dataset: classes, channels, native size (None: any), class names."""
    num_classes: int
    in_chans: int
    img_size: Optional[int]
    class_names: Optional[Tuple[str, ...]] = None


def _folder_split(args: Any, split: str) -> Path:
    if not args.data_dir:
        raise ValueError('--dataset folder needs --data-dir DIR (a tree DIR/train/<class>/*.jpg, DIR/val/...)')
    path = Path(args.data_dir) / split
    if not path.is_dir():
        raise FileNotFoundError(f'the image folder {path} does not exist: --data-dir must hold the class folders '
                                f'of each split ({args.train_split}/, {args.val_split}/)')
    return path


def dataset_spec(args: Any, splits: List[str]) -> DataSpec:
    """Check that the data can be found (before any work) and return its classes/channels/size."""
    if args.dataset in IN_MEMORY:
        if args.dataset == 'fashion_mnist':
            _fashion_mnist_root(args.data_dir, args.download, probe=True)
        elif not args.download:
            _cifar(args, train=False)  # raises a clear error if absent
        names = tuple(datasets.FashionMNIST.classes) if args.dataset == 'fashion_mnist' else None
        return DataSpec(*IN_MEMORY[args.dataset], class_names=names)
    if args.dataset != 'folder':
        raise ValueError(f'unknown dataset {args.dataset!r}: use folder, fashion_mnist, cifar10 or cifar100')
    classes = None
    for split in splits:
        found = sorted(p.name for p in _folder_split(args, split).iterdir() if p.is_dir())
        if not found:
            raise FileNotFoundError(f'{_folder_split(args, split)} has no class folders')
        if classes is not None and found != classes:
            raise ValueError(f'the class folders of {splits[0]}/ and {split}/ differ')
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
            raise ValueError('--download needs --data-dir DIR to download Fashion-MNIST into')
        if not probe:
            datasets.FashionMNIST(data_dir, train=True, download=True)
            datasets.FashionMNIST(data_dir, train=False, download=True)
            return Path(data_dir) / 'FashionMNIST' / 'raw', False
        return Path(data_dir), False
    where = f'--data-dir {data_dir} nor ' if data_dir else ''
    raise FileNotFoundError(
        f'Fashion-MNIST not found in {where}{DEBIAN_FASHION_MNIST}. Get it one of three ways: pass --data-dir DIR '
        f'holding {", ".join(f + ".gz" for f in _FMNIST_FILES[:2])}, ... ; or install the Debian package '
        f'(sudo apt-get install dataset-fashion-mnist); or pass --download --data-dir DIR to let torchvision '
        f'download it')


def _fashion_mnist(args: Any, train: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    folder, gz = _fashion_mnist_root(args.data_dir, args.download)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / 'FashionMNIST' / 'raw'  # torchvision's layout, uncompressed
        raw.mkdir(parents=True)
        for name in _FMNIST_FILES:
            if gz:
                with gzip.open(folder / (name + '.gz'), 'rb') as src, open(raw / name, 'wb') as dst:
                    shutil.copyfileobj(src, dst)
            else:
                (raw / name).symlink_to((folder / name).resolve())
        ds = datasets.FashionMNIST(tmp, train=train, download=False)
        return ds.data.unsqueeze(1).contiguous(), ds.targets.clone()


def _cifar(args: Any, train: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    cls = datasets.CIFAR10 if args.dataset == 'cifar10' else datasets.CIFAR100
    if not args.data_dir:
        raise ValueError(f'--dataset {args.dataset} needs --data-dir DIR (add --download to fetch it there)')
    try:
        ds = cls(args.data_dir, train=train, download=args.download)
    except RuntimeError as e:
        raise FileNotFoundError(f'{args.dataset} not found in {args.data_dir} ({e}); pass --download to let '
                                'torchvision fetch it') from e
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)


def load_in_memory(args: Any, train: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """All images of a split as one uint8 (N, C, H, W) tensor and the labels."""
    if args.dataset == 'fashion_mnist':
        return _fashion_mnist(args, train)
    return _cifar(args, train)


def _read_image(path: str) -> Image.Image:
    """ImageFolder's loader, with an error that names the file."""
    try:
        with open(path, 'rb') as f:
            return Image.open(f).convert('RGB')
    except Exception as e:
        raise ValueError(f'cannot read image {path}: {e}') from e


def build_loader(
        args: Any,
        data_config: Dict[str, Any],
        train: bool,
        rank: int = 0,
        world_size: int = 1,
        device: Optional[torch.device] = None,
):
    """The training (shuffled, augmented, drop-last) or evaluation loader of ``args.dataset``."""
    mean, std = data_config['mean'], data_config['std']
    accum = getattr(args, 'grad_accum_steps', 1) if train else 1
    if args.dataset in IN_MEMORY:
        images, labels = load_in_memory(args, train)
        size = data_config['input_size'][-1]
        if images.shape[-1] != size:
            images = _resize_uint8(images, size)
        if not train:
            return TensorLoader(images, labels, args.batch_size, mean, std, rank=rank, world_size=world_size,
                                device=device)
        return TensorLoader(
            images, labels, args.batch_size, mean, std, train=True, pad=args.pad_crop, hflip=args.hflip,
            seed=args.seed, rank=rank, world_size=world_size, accum_steps=accum, device=device)
    split = args.train_split if train else args.val_split
    if train:
        transform = create_transform(
            data_config['input_size'], is_training=True, scale=args.scale, ratio=args.ratio, hflip=args.hflip,
            color_jitter=args.color_jitter, auto_augment=args.aa, interpolation=args.train_interpolation,
            mean=mean, std=std, re_prob=args.reprob, re_mode=args.remode)
    else:
        transform = create_transform(
            data_config['input_size'], is_training=False, interpolation=data_config['interpolation'],
            mean=mean, std=std, crop_pct=data_config['crop_pct'], crop_mode=data_config.get('crop_mode', 'center'))
    ds = datasets.ImageFolder(str(_folder_split(args, split)), transform=transform, loader=_read_image)
    pin = device is not None and device.type == 'cuda'
    if not train:
        sampler = range(rank, len(ds), world_size) if world_size > 1 else None  # every image once overall
        return DataLoader(ds, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers, pin_memory=pin)
    generator = torch.Generator().manual_seed(args.seed + rank)  # order (one process) and worker seeds
    if world_size > 1:
        sampler = DistributedSampler(ds, world_size, rank, shuffle=True, seed=args.seed, drop_last=True)
    else:
        sampler = RandomSampler(ds, generator=generator)
    if len(sampler) < args.batch_size * args.grad_accum_steps:
        raise ValueError(f'{len(sampler)} training images per process are fewer than one step of '
                         f'{args.batch_size * args.grad_accum_steps}: lower --batch-size')
    return DataLoader(ds, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers, drop_last=True,
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

