"""Two gloo processes train like one process at the same global batch.

Without SyncBatchNorm (CUDA only in PyTorch) each process normalises with the statistics of its own batch, so the
honest one-process reference is the same global batch of 16 split into the same two micro-batches of 8 with
``--grad-accum-steps 2``: every batch-norm layer then sees exactly the samples it sees in the DDP run, and DDP's
gradient average equals the accumulated mean. Parameters must agree within float tolerance (the summation order
differs). Running statistics are compared between the ranks only (DDP broadcasts rank 0's buffers each step and
``--dist-bn reduce`` averages them after the epoch; a single process updates them per micro-batch instead).
"""
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

import banet  # noqa: F401
from banet.train import train

from _train_data import make_fashion_mnist, train_config


def _args(data: Path, out: Path, name: str, *extra: str):
    return train_config(
        '--model', 'ba_resnet20_cifar', '--dataset', 'fashion_mnist', '--data-dir', str(data),
        '--epochs', '1', '--lr', '0.2', '--warmup-epochs', '0', '--pad-crop', '2', '--smoothing', '0.1',
        '--output', str(out), '--experiment', name, '--threads', '1', '--no-progress', '--device', 'cpu', *extra)


def _worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port))
    result = train(_args(Path(data), Path(out), 'ddp', '-b', '8'))
    state = {k: v.contiguous() for k, v in result['model'].state_dict().items()}
    save_file(state, str(Path(out) / f'rank{rank}.safetensors'))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_ddp_matches_one_process(tmp_path):
    data = make_fashion_mnist(tmp_path / 'data', n_train=64, n_test=20)
    mp.spawn(_worker, args=(2, _free_port(), str(data), str(tmp_path)), nprocs=2, join=True)
    ranks = [load_file(str(tmp_path / f'rank{r}.safetensors')) for r in range(2)]
    for k in ranks[0]:
        assert torch.equal(ranks[0][k], ranks[1][k]), f'ranks differ at {k}'

    single = train(_args(data, tmp_path, 'single', '-b', '8', '--grad-accum-steps', '2'))['model'].state_dict()
    params = {k for k, _ in single.items() if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))}
    start = _initial_weights()
    moved = 0
    for k in params:
        torch.testing.assert_close(ranks[0][k], single[k], rtol=1e-4, atol=1e-5, msg=f'DDP != 1 process at {k}')
        moved += not torch.allclose(start[k], single[k])
    assert moved > len(params) // 2  # the comparison is about trained weights, not the initialisation
    assert (tmp_path / 'ddp' / 'last' / 'model.safetensors').is_file()  # rank 0 wrote the checkpoint


def _initial_weights():
    import timm
    torch.manual_seed(42)  # what --seed 42 gives process 0 before building the model
    return timm.create_model('ba_resnet20_cifar', num_classes=10, in_chans=1).state_dict()
