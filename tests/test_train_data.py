"""The in-memory batch loader and the dataset readers."""
import gzip
import shutil
from argparse import Namespace

import pytest
import torch

from banet.train import data as data_mod
from banet.train.tensor_loader import TensorLoader, batch_pad_crop_flip

from _train_data import make_fashion_mnist


def test_pad_crop_flip_moves_pixels():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    same = batch_pad_crop_flip(x, torch.tensor([[2, 2], [2, 2]]), torch.tensor([False, False]), pad=2)
    assert torch.equal(same, x)  # offset == pad is the identity
    out = batch_pad_crop_flip(x, torch.tensor([[0, 0], [2, 3]]), torch.tensor([False, True]), pad=2)
    assert torch.equal(out[0, 0, 2:, 2:], x[0, 0, :2, :2]) and out[0, 0, :2].sum() == 0  # shifted down-right
    assert torch.equal(out[1, 0, :, :].flip(-1)[:, :3], x[1, 0, :, 1:])  # shifted left by one, then flipped
    assert out[1, 0, :, 0].sum() == 0


def _loader(images, labels, **kw):
    return TensorLoader(images, labels, 4, [0.5], [0.25], train=True, pad=2, hflip=0.5, seed=3, **kw)


def test_two_processes_see_the_micro_batches_of_one_accumulating_process():
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    labels = torch.arange(40)
    single = list(_loader(images, labels, accum_steps=2))
    ranks = [list(_loader(images, labels, rank=r, world_size=2)) for r in range(2)]
    assert len(single) == 2 * len(ranks[0]) == 2 * (40 // 8)
    for step in range(len(ranks[0])):
        for r in range(2):
            x1, y1 = single[2 * step + r]
            x2, y2 = ranks[r][step]
            assert torch.equal(y1, y2) and torch.equal(x1, x2)  # same samples, same augmentation
    seen = torch.cat([y for _, y in single])
    assert len(set(seen.tolist())) == len(seen) == 40  # a permutation, no repeats
    again = list(_loader(images, labels, accum_steps=2))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(single, again))  # the seed decides everything


def test_training_drops_the_last_partial_step_and_evaluation_keeps_everything():
    images = torch.zeros(10, 1, 8, 8, dtype=torch.uint8)
    loader = _loader(images, torch.arange(10))
    assert len(loader) == len(list(loader)) == 2
    evals = [TensorLoader(images, torch.arange(10), 4, [0.5], [0.25], rank=r, world_size=3) for r in range(3)]
    got = sorted(torch.cat([y for e in evals for _, y in e]).tolist())
    assert got == list(range(10))
    with pytest.raises(ValueError, match='lower --batch-size'):
        _loader(images, torch.arange(10), world_size=2, accum_steps=2)


def test_fashion_mnist_from_gz_and_from_torchvision_layout(tmp_path):
    gz = make_fashion_mnist(tmp_path / 'gz', n_train=20, n_test=10)
    args = Namespace(dataset='fashion_mnist', data_dir=str(gz), download=False)
    x, y = data_mod.load_in_memory(args, train=True)
    assert x.shape == (20, 1, 28, 28) and x.dtype == torch.uint8 and y.tolist() == [i % 10 for i in range(20)]
    raw = tmp_path / 'tv' / 'FashionMNIST' / 'raw'
    raw.mkdir(parents=True)
    for f in gz.iterdir():
        with gzip.open(f) as src, open(raw / f.name[:-3], 'wb') as dst:
            shutil.copyfileobj(src, dst)
    x2, y2 = data_mod.load_in_memory(Namespace(dataset='fashion_mnist', data_dir=str(tmp_path / 'tv'),
                                               download=False), train=False)
    x3, _ = data_mod.load_in_memory(args, train=False)
    assert torch.equal(x2, x3) and len(y2) == 10
