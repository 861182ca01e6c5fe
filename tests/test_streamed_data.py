"""timm's WebDataset and Hugging Face readers: training, sharding over processes, offline reading, a missing library."""
import io
import json
import socket
import sys
import tarfile
from pathlib import Path

import datasets as hf
import numpy as np
import pytest
import torch
from PIL import Image

from banet.cli import main
from banet.errors import BanetError
from banet.io import load_state_dict_file
from banet.train import TrainConfig, train
from banet.train.data import build_eval_loader, build_train_loader, dataset_spec

DATA_CONFIG = {'input_size': (3, 24, 24), 'mean': (0.5,) * 3, 'std': (0.25,) * 3, 'interpolation': 'bilinear',
               'crop_pct': 1.0}


def _png(rng: np.random.Generator) -> Image.Image:
    return Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))


def _write_shards(root: Path, split: str, n: int, classes: int = 2, shards: int = 2) -> None:
    """``shards`` WebDataset tar files of n / shards PNG + .cls samples each, and timm's ``_info.json``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    per_shard = n // shards
    for shard in range(shards):
        with tarfile.open(root / f'{split}-{shard:06d}.tar', 'w') as tar:
            for i in range(per_shard):
                key, label = f'{shard}_{i:04d}', ((shard * per_shard + i) % classes)
                buf = io.BytesIO()
                _png(rng).save(buf, format='PNG')
                for suffix, payload in (('png', buf.getvalue()), ('cls', str(label).encode())):
                    info = tarfile.TarInfo(f'{key}.{suffix}')
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    file = root / '_info.json'
    info = json.loads(file.read_text()) if file.is_file() else {'name': 'tiny', 'splits': {}}
    info['splits'][split] = {'num_samples': n, 'filenames': [f'{split}-{s:06d}.tar' for s in range(shards)],
                             'shard_lengths': [per_shard] * shards, 'name': split}
    file.write_text(json.dumps(info))


def _write_hf_dataset(folder: Path, splits: dict, classes: int) -> None:
    """A Hugging Face dataset as ``datasets`` writes it: one parquet file per split, image and class-label columns."""
    features = hf.Features({'image': hf.Image(), 'label': hf.ClassLabel(names=[f'c{i}' for i in range(classes)])})
    rng = np.random.default_rng(0)
    for split, n in splits.items():
        ds = hf.Dataset.from_dict({'image': [_png(rng) for _ in range(n)], 'label': [i % classes for i in range(n)]},
                                  features=features)
        ds.to_parquet(str(folder / 'data' / f'{split}-00000-of-00001.parquet'))


@pytest.fixture
def no_network(monkeypatch):
    """Refuse (and record) every look-up of an internet host and every internet connection: nothing may download."""
    attempts = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def refuse_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f'the test refuses a connection to {address}')
        return connect(sock, address)

    def refuse_lookup(host, *args, **kwargs):
        attempts.append(host)
        raise socket.gaierror(f'the test refuses to look up {host}')
    monkeypatch.setattr(socket.socket, 'connect', refuse_connect)
    monkeypatch.setattr(socket, 'getaddrinfo', refuse_lookup)
    return attempts


def _labels(loader):
    return [int(y) for _, batch in loader for y in batch]


def test_webdataset_shards_train_through_timm(tmp_path):
    root = tmp_path / 'wds'
    _write_shards(root, 'train', 16)
    _write_shards(root, 'validation', 8)
    result = train(TrainConfig(model='resnet20_cifar', dataset='wds/tiny', data_dir=str(root), num_classes=2,
                               train_split='train', val_split='validation', epochs=1, batch_size=4, img_size=24,
                               workers=0, progress=False, threads=1, output=str(tmp_path / 'runs'),
                               experiment='w'))
    assert result['val_top1'] >= 0 and (tmp_path / 'runs/w/last/model.safetensors').is_file()


@pytest.mark.parametrize('workers, batch_size', [(0, 4), (2, 3)])
def test_webdataset_ranks_train_on_disjoint_shards(tmp_path, workers, batch_size):
    _write_shards(tmp_path, 'train', 16, classes=16, shards=4)  # label = sample number
    cfg = TrainConfig(model='resnet20_cifar', dataset='wds/tiny', data_dir=str(tmp_path), num_classes=16,
                      batch_size=batch_size, workers=workers, seed=5)
    loaders = [build_train_loader(cfg, DATA_CONFIG, rank=r, world_size=2) for r in range(2)]
    for epoch in range(2):
        seen = []
        for loader in loaders:
            loader.dataset.set_epoch(epoch)
            batches = list(loader)
            assert len(batches) == len(loader) > 0  # the epoch's steps, as the scheduler counts them
            assert all(len(y) == batch_size for _, y in batches)
            seen.append(set(_labels(batches)))
        assert seen[0].isdisjoint(seen[1])  # each rank reads its own shards
        assert seen[0] | seen[1] == set(range(16))  # and together every sample


def test_webdataset_with_fewer_shards_than_readers_is_refused(tmp_path):
    _write_shards(tmp_path, 'train', 16, shards=4)
    cfg = TrainConfig(model='resnet20_cifar', dataset='wds/tiny', data_dir=str(tmp_path), num_classes=2,
                      batch_size=4, workers=3)
    with pytest.raises(BanetError, match='4 shard.* for 2 process.* x 3 loader worker.*lower --workers'):
        build_train_loader(cfg, DATA_CONFIG, rank=1, world_size=2)  # a worker without a shard ends its epoch early
    cfg.workers = 2
    assert len(build_train_loader(cfg, DATA_CONFIG, rank=1, world_size=2)) == 2


def test_webdataset_evaluation_reads_each_sample_once_over_the_ranks(tmp_path):
    _write_shards(tmp_path, 'validation', 16, classes=16, shards=4)
    cfg = TrainConfig(model='resnet20_cifar', dataset='wds/tiny', data_dir=str(tmp_path), num_classes=16,
                      val_split='validation', batch_size=3, workers=0)
    single = _labels(build_eval_loader(cfg, DATA_CONFIG))
    assert sorted(single) == list(range(16))
    ranks = [_labels(build_eval_loader(cfg, DATA_CONFIG, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 8 and sorted(ranks[0] + ranks[1]) == list(range(16))


def test_hugging_face_dataset_on_disk_trains_without_the_network(tmp_path, no_network):
    _write_hf_dataset(tmp_path / 'tiny', {'train': 8, 'val': 4}, classes=2)  # datasets' split names: train, val
    cache = tmp_path / 'cache'
    result = train(TrainConfig(model='resnet20_cifar', dataset=f'hfds/{tmp_path / "tiny"}', data_dir=str(cache),
                               num_classes=2, epochs=1, batch_size=4, img_size=24, workers=0, progress=False,
                               threads=1, output=str(tmp_path / 'runs'), experiment='h'))
    assert result['val_top1'] >= 0 and (tmp_path / 'runs/h/last/model.safetensors').is_file()
    assert len((tmp_path / 'runs/h/metrics.csv').read_text().splitlines()) == 2  # header and the one epoch
    assert no_network == []
    assert sorted(p.name for p in cache.rglob('*.arrow')) == ['tiny-train.arrow', 'tiny-val.arrow']


def test_hugging_face_dataset_is_shuffled_and_split_over_ranks(tmp_path, no_network):
    _write_hf_dataset(tmp_path / 'tiny', {'train': 12}, classes=12)  # label = sample number
    cfg = TrainConfig(model='resnet20_cifar', dataset=f'hfds/{tmp_path / "tiny"}', data_dir=str(tmp_path / 'cache'),
                      num_classes=12, batch_size=3, workers=0, seed=1)
    one = _labels(build_train_loader(cfg, DATA_CONFIG))
    assert sorted(one) == list(range(12)) and one != list(range(12))  # every sample, shuffled
    assert _labels(build_train_loader(cfg, DATA_CONFIG)) == one  # by the seed
    ranks = [set(_labels(build_train_loader(cfg, DATA_CONFIG, rank=r, world_size=2))) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 6 and ranks[0].isdisjoint(ranks[1])
    assert no_network == []


@pytest.mark.parametrize('kind', ['wds', 'hfds'])
def test_streamed_data_resumes_exactly(tmp_path, no_network, kind):
    if kind == 'wds':  # a loader worker: the reader's sample shuffle starts afresh each epoch (see docs/training.md)
        _write_shards(tmp_path / 'wds', 'train', 16)
        _write_shards(tmp_path / 'wds', 'val', 8)
        data = ['--dataset', 'wds/tiny', '--data-dir', str(tmp_path / 'wds'), '--workers', '1']
    else:
        _write_hf_dataset(tmp_path / 'tiny', {'train': 16, 'val': 8}, classes=2)
        data = ['--dataset', f'hfds/{tmp_path / "tiny"}', '--data-dir', str(tmp_path / 'cache'), '--workers', '0']
    args = ['train', '--model', 'resnet20_cifar', *data, '--num-classes', '2', '-b', '4', '--img-size', '24',
            '--sched', 'step', '--drop', '0.2', '--deterministic', '--threads', '1', '--no-progress',
            '--output', str(tmp_path / 'runs')]  # a constant learning rate: 1 + 1 epochs == 2 epochs
    assert main([*args, '--epochs', '2', '--experiment', 'straight']) == 0
    assert main([*args, '--epochs', '1', '--experiment', 'resumed']) == 0
    resumed = tmp_path / 'runs' / 'resumed'
    assert main(['train', '--resume', str(resumed), '--epochs', '2', '--threads', '1', '--no-progress']) == 0
    a = load_state_dict_file(tmp_path / 'runs' / 'straight' / 'last' / 'model.safetensors')
    b = load_state_dict_file(resumed / 'last' / 'model.safetensors')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert no_network == []


@pytest.mark.parametrize('dataset, module', [('wds/tiny', 'webdataset'), ('hfds/tiny', 'datasets')])
def test_a_missing_library_is_one_line_naming_the_install(tmp_path, monkeypatch, capsys, dataset, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails as if it were not installed
    cfg = TrainConfig(model='resnet20_cifar', dataset=dataset, data_dir=str(tmp_path), num_classes=2)
    with pytest.raises(BanetError, match=f'needs the {module} package .*pip install "banet\\[data\\]"'):
        dataset_spec(cfg, ['train'])
    with pytest.raises(BanetError, match='pip install "banet'):
        build_train_loader(cfg, DATA_CONFIG)
    assert main(['train', '--model', 'resnet20_cifar', '--dataset', dataset, '--data-dir', str(tmp_path),
                 '--num-classes', '2', '--epochs', '1', '--no-progress', '--output', str(tmp_path / 'runs')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "banet[data]"' in err[0] and 'Traceback' not in err[0]
    assert not (tmp_path / 'runs').exists()  # stopped before any work
