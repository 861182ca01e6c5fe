"""The seeded, shuffled training loader of a run: a ``DistributedSampler`` under torchrun, ``drop_last``."""
from typing import Callable, Optional

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from .distributed import DistInfo

__all__ = ['shuffled_loader']


def shuffled_loader(dataset: Dataset, batch_size: int, workers: int, seed: int, info: DistInfo,
                    collate_fn: Optional[Callable] = None) -> DataLoader:
    """The training loader; ``loader.generator`` (seeded with ``seed + rank``) is the state a checkpoint keeps."""
    generator = torch.Generator().manual_seed(seed + info.rank)
    sampler = DistributedSampler(dataset, info.world_size, info.rank, seed=seed, drop_last=True) \
        if info.distributed else RandomSampler(dataset, generator=generator)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=workers,
                      collate_fn=collate_fn, generator=generator)
