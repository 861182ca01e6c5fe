"""The benchmark command end to end on tiny models, and its input checks (no timing assertions)."""
import json

import pytest
import timm

from banet.measure.benchmark import BenchConfig, run_benchmark
from banet.cli import main


def test_benchmark_command_end_to_end(tmp_path, capsys):
    argv = ['benchmark', 'resnet20_cifar', 'ba_resnet20_cifar', '--img-size', '16', '-b', '4', '--warmup', '1',
            '--repeats', '2', '--iters', '1', '--output', str(tmp_path), '--name', 'tiny']
    assert main(argv) == 0
    assert '| `ba_resnet20_cifar` |' in capsys.readouterr().out
    report = json.loads((tmp_path / 'tiny.json').read_text())
    rows = {r['model']: r for r in report['results']}
    assert rows['resnet20_cifar']['ratio'] == 1.0 and rows['ba_resnet20_cifar']['ratio'] > 0
    assert all(r['min_ms'] <= r['median_ms'] <= r['max_ms'] for r in rows.values())
    # the bridge saves extra tensors for backward: more activation memory than the plain network
    assert rows['ba_resnet20_cifar']['saved_mib'] > rows['resnet20_cifar']['saved_mib'] > 0
    assert report['machine']['torch'] and report['config']['mode'] == 'train'
    assert (tmp_path / 'tiny.md').read_text().startswith('train step, batch 4')
    assert (tmp_path / 'tiny.png').read_bytes()[:4] == b'\x89PNG'


def test_inference_with_fuse_and_channels_last():
    cfg = BenchConfig(mode='infer', batch_size=2, img_size=16, fuse=True, channels_last=True, warmup=0,
                      repeats=1, iters=1)
    report = run_benchmark(['ba_resnet20_cifar'], cfg)
    assert report['results'][0]['saved_mib'] is None and report['results'][0]['img_per_s'] > 0


def test_custom_factories_are_measured():
    cfg = BenchConfig(batch_size=2, img_size=16, warmup=0, repeats=1, iters=1)
    report = run_benchmark(['mine'], cfg, factories={'mine': lambda: timm.create_model('resnet20_cifar')})
    assert report['results'][0]['model'] == 'mine'


@pytest.mark.parametrize('kwargs,match', [
    (dict(mode='train', fuse=True), 'use it with --mode infer'),
    (dict(mode='eval'), "mode must be 'train' or 'infer'"),
    (dict(device='cuda'), 'CUDA is not available') if not __import__('torch').cuda.is_available() else
    (dict(dtype='int8'), 'dtype must be one of'),
    (dict(batch_size=1), 'batch size >= 2'),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BenchConfig(**kwargs)


def test_unknown_or_missing_reference(capsys):
    assert main(['benchmark', 'no_such_net']) == 2
    assert 'unknown model(s)' in capsys.readouterr().err
    assert main(['benchmark', 'resnet20_cifar', '--reference', 'resnet50']) == 2
    assert 'reference model' in capsys.readouterr().err
