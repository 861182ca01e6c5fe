"""Loaders of COCO-layout data sets, and the share of an evaluation set each process scores under torchrun."""
from typing import Callable, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..runs.distributed import DistInfo

__all__ = ['collate_lists', 'build_loader', 'eval_shard']


def collate_lists(batch: Sequence[tuple]) -> tuple[list, list]:
    """Lists of images and targets, as torchvision detectors take them (sizes may differ)."""
    images, targets = zip(*batch)
    return list(images), list(targets)


def build_loader(dataset: Dataset, batch_size: int, *, train: bool, num_workers: int = 0,
                 collate_fn: Optional[Callable] = collate_lists, seed: Optional[int] = None) -> DataLoader:
    """DataLoader for training (shuffled, ``drop_last``) or evaluation (in order, every image)."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, drop_last=train, num_workers=num_workers,
                      collate_fn=collate_fn, generator=generator, persistent_workers=num_workers > 0)


def eval_shard(dataset: Dataset, dist: Optional[DistInfo]) -> Dataset:
    """This process's contiguous block of ``dataset`` (all of it outside torchrun).

    The blocks cover every image exactly once — no padding with repeated images as ``DistributedSampler`` does —
    so metrics gathered over the processes are those of one process; block sizes differ by at most one.
    """
    if dist is None or not dist.distributed:
        return dataset
    n = len(dataset)
    start, stop = n * dist.rank // dist.world_size, n * (dist.rank + 1) // dist.world_size
    return Subset(dataset, range(start, stop))
