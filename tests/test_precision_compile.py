"""Precision recorded with a run, --no- overrides of a recipe, and the compiled path: train, resume, plain keys."""
import json

import pytest
import torch
import yaml

from banet.cli import main
from banet.io import load_state_dict_file
from banet.runs import precision as precision_mod
from banet.runs import loop as trainer  # the loop that calls train_one_epoch

from _train_data import Crash, crash_in_epoch, make_fashion_mnist


@pytest.fixture(scope='module')
def fmnist(tmp_path_factory):
    return make_fashion_mnist(tmp_path_factory.mktemp('fmnist'), n_train=32, n_test=16)


def _train(fmnist, tmp_path, name, *extra):
    return main(['train', '--model', 'ba_resnet20_cifar', '--dataset', 'fashion_mnist', '--data-dir', str(fmnist),
                 '-b', '8', '--epochs', '2', '--lr', '0.05', '--output', str(tmp_path), '--experiment', name,
                 '--threads', '1', '--no-progress', '--deterministic', *extra])


@pytest.mark.parametrize('native', [True, False])
def test_auto_precision_is_printed_and_recorded(fmnist, tmp_path, monkeypatch, capsys, native):
    monkeypatch.setattr(precision_mod, 'cpu_has_native_bf16', lambda: native)
    recipe = tmp_path / 'r.yaml'
    recipe.write_text('amp: auto\nchannels_last: auto\nepochs: 1\n')
    assert _train(fmnist, tmp_path, 'auto', '-c', str(recipe)) == 0
    out = capsys.readouterr().out
    expected = 'bfloat16 autocast, channels_last' if native else 'float32, NCHW'
    assert f'precision: {expected}' in out
    config = json.loads((tmp_path / 'auto' / 'last' / 'config.json').read_text())
    assert config['precision']['amp_dtype'] == ('bfloat16' if native else None)
    assert yaml.safe_load((tmp_path / 'auto' / 'config.yaml').read_text())['amp'] == 'auto'
    # --no-amp and --no-channels-last force them off whatever the file says
    assert _train(fmnist, tmp_path, 'off', '-c', str(recipe), '--no-amp', '--no-channels-last') == 0
    assert 'precision: float32, NCHW (amp off)' in capsys.readouterr().out
    assert yaml.safe_load((tmp_path / 'off' / 'config.yaml').read_text())['amp'] is False


def _same_weights(a, b):
    for name in ('model.safetensors',):
        x, y = load_state_dict_file(a / 'last' / name), load_state_dict_file(b / 'last' / name)
        assert x.keys() == y.keys()
        assert not any(k.startswith('_orig_mod.') for k in x)  # a compiled run saves plain keys
        for k in x:
            assert torch.equal(x[k], y[k]), k


@pytest.mark.parametrize('backend', ['eager', pytest.param('inductor', marks=pytest.mark.slow)])
def test_a_compiled_run_trains_resumes_and_saves_plain_keys(fmnist, tmp_path, monkeypatch, capsys, backend):
    compiled = ['--compile', '--compile-backend', backend]
    assert _train(fmnist, tmp_path, 'straight', *compiled) == 0
    assert 'compile + first step:' in capsys.readouterr().out
    real = crash_in_epoch(monkeypatch, 2)
    with pytest.raises(Crash):
        _train(fmnist, tmp_path, 'resumed', *compiled)
    monkeypatch.setattr(trainer, 'train_one_epoch', real)
    assert main(['train', '--resume', str(tmp_path / 'resumed'), '--threads', '1', '--no-progress']) == 0
    _same_weights(tmp_path / 'straight', tmp_path / 'resumed')
    # the compiled run's checkpoint loads and validates uncompiled
    assert main(['validate', '--checkpoint', str(tmp_path / 'resumed'), '--data-dir', str(fmnist),
                 '--dataset', 'fashion_mnist', '--threads', '1', '--no-progress']) == 0
