"""Process-group setup for runs launched with ``torchrun`` (gloo on CPU, nccl on CUDA)."""
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

__all__ = ['DistInfo', 'init_distributed', 'broadcast_object', 'cleanup_distributed']


@dataclass
class DistInfo:
    """This process's place in the run."""
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device('cpu')

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def primary(self) -> bool:
        return self.rank == 0


def init_distributed(device: Optional[str] = None) -> DistInfo:
    """Join the process group torchrun describes in the environment (if WORLD_SIZE > 1) and pick the device."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank, local_rank = int(os.environ.get('RANK', '0')), int(os.environ.get('LOCAL_RANK', '0'))
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    dev = torch.device(device)
    if dev.type == 'cuda' and dev.index is None:
        dev = torch.device('cuda', local_rank)
    if dev.type == 'cuda':
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend='nccl' if dev.type == 'cuda' else 'gloo')
    return DistInfo(rank, local_rank, world_size, dev)


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
