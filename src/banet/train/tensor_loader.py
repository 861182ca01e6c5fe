"""A loader for small datasets held in memory as one uint8 tensor, augmented a whole batch at a time.

Per-image PIL transforms cost more than a ResNet-20 step on a 2-core CPU; cropping and flipping a batch with
tensor indexing costs almost nothing. All randomness of an epoch (order, crop offsets, flips) is drawn for the
whole dataset from one ``torch.Generator`` at the start of the epoch, so every process of a distributed run draws
the same numbers, and a sample gets the same augmentation whatever the number of processes, the batch size or the
gradient accumulation. Saving the generator's state between epochs makes a resumed run exact.
"""
from typing import Iterator, Optional, Sequence, Tuple

import torch

from ..errors import BanetError
from ..io import norm_tensors

__all__ = ['TensorLoader', 'batch_pad_crop_flip']


def batch_pad_crop_flip(
        images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad a (B, C, H, W) batch by ``pad``, crop HxW at per-sample ``offsets`` (B, 2), flip where ``flips``."""
    b, c, h, w = images.shape
    if pad:
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
        rows = (offsets[:, 0, None] + torch.arange(h))[:, None, :, None]
        cols = (offsets[:, 1, None] + torch.arange(w))[:, None, None, :]
        images = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    return torch.where(flips[:, None, None, None], images.flip(-1), images)


class TensorLoader:
    """Batches of (normalised float images, labels) from uint8 ``images`` (N, C, H, W) and ``labels`` (N,).

    ``train=True`` shuffles, pads-and-crops by ``pad`` and flips with probability ``hflip``, and drops the last
    incomplete step. Each optimiser step takes ``batch_size * world_size * accum_steps`` samples; this process's
    micro-batch ``a`` of the step is slot ``a * world_size + rank`` of them, which makes one process with
    ``accum_steps=k`` see the same micro-batches as ``k`` processes. Evaluation (``train=False``) splits the data
    between processes in order and keeps the last partial batch.
    """

    def __init__(
            self,
            images: torch.Tensor,
            labels: torch.Tensor,
            batch_size: int,
            mean: Sequence[float],
            std: Sequence[float],
            train: bool = False,
            pad: int = 0,
            hflip: float = 0.0,
            seed: int = 0,
            rank: int = 0,
            world_size: int = 1,
            accum_steps: int = 1,
            device: Optional[torch.device] = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise BanetError('images must be a uint8 tensor of shape (N, C, H, W)')
        self.images, self.labels = images, labels
        self.batch_size, self.train, self.pad, self.hflip = batch_size, train, pad, hflip
        self.rank, self.world_size, self.accum_steps = rank, world_size, accum_steps
        self.device = device or torch.device('cpu')
        self.mean, self.std = norm_tensors({'mean': mean, 'std': std}, scale=255)  # uint8 pixel units
        self.generator = torch.Generator().manual_seed(seed)
        self.step_size = batch_size * world_size * accum_steps
        if train and len(images) < self.step_size:
            raise BanetError(f'{len(images)} training images are fewer than one step of {self.step_size} '
                             f'(batch size x processes x accumulation): lower --batch-size')

    def __len__(self) -> int:
        if self.train:
            return len(self.images) // self.step_size * self.accum_steps
        return -(-len(self._eval_indices()) // self.batch_size)

    def _eval_indices(self) -> torch.Tensor:
        return torch.arange(len(self.images)).tensor_split(self.world_size)[self.rank]

    def _draw_epoch(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator)
        offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=self.generator)
        flips = torch.rand(n, generator=self.generator) < self.hflip
        return order, offsets, flips

    def _batch(self, idx: torch.Tensor, offsets=None, flips=None) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.images[idx]
        if offsets is not None:
            x = batch_pad_crop_flip(x, offsets, flips, self.pad)
        x = (x.float() - self.mean) / self.std
        return x.to(self.device, non_blocking=True), self.labels[idx].to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        if not self.train:
            for idx in self._eval_indices().split(self.batch_size):
                yield self._batch(idx)
            return
        order, offsets, flips = self._draw_epoch()
        b = self.batch_size
        for step in range(len(self.images) // self.step_size):
            chunk = torch.arange(step * self.step_size, (step + 1) * self.step_size)
            for a in range(self.accum_steps):
                slot = a * self.world_size + self.rank
                pos = chunk[slot * b:(slot + 1) * b]
                yield self._batch(order[pos], offsets[order[pos]], flips[order[pos]])
