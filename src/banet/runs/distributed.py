"""Process-group setup for runs launched with ``torchrun`` (gloo on CPU, nccl on CUDA), restarts included.

Under ``torchrun --max-restarts N`` the workers of every attempt meet in the elastic agent's key-value store,
which outlives a restart: the addresses the killed attempt published there would be read by the next one (gloo
then connects to a dead process). Each attempt therefore keys its process group under its own restart count.
"""
import os
from dataclasses import dataclass
from datetime import timedelta
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
        dist.init_process_group(backend='nccl' if dev.type == 'cuda' else 'gloo', store=_attempt_store(world_size),
                                rank=rank, world_size=world_size)
    return DistInfo(rank, local_rank, world_size, dev)


def _attempt_store(world_size: int) -> Optional[dist.Store]:
    """torchrun's agent store under a prefix of this restart attempt (None outside it: ``env://`` as usual)."""
    if os.environ.get('TORCHELASTIC_USE_AGENT_STORE') != 'True':
        return None
    store = dist.TCPStore(os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']), world_size, is_master=False,
                          timeout=timedelta(minutes=30))
    return dist.PrefixStore(f'banet/attempt_{os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")}', store)


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
