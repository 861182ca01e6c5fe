"""1 epoch + crash + resume + 1 epoch gives exactly the weights of 2 epochs straight (CPU, deterministic)."""
import pytest
import torch

import banet  # noqa: F401
from banet.io import load_state_dict_file
from banet.cli import main
from banet.runs import loop as trainer  # the loop that calls train_one_epoch

from _train_data import Crash, crash_in_epoch, make_fashion_mnist


def test_resume_equals_straight_run(tmp_path, monkeypatch):
    data = make_fashion_mnist(tmp_path / 'data', n_train=64, n_test=16)
    # everything that draws random numbers: batch augmentation and order (loader generator), dropout (torch),
    # mixup (numpy), plus EMA, a per-update warmup+cosine schedule and momentum buffers
    args = ['train', '--model', 'ba_resnet20_cifar', '--dataset', 'fashion_mnist', '--data-dir', str(data),
            '-b', '16', '--epochs', '2', '--drop', '0.2', '--mixup', '0.4', '--smoothing', '0.1', '--model-ema',
            '--model-ema-decay', '0.9', '--warmup-epochs', '1', '--sched-on-updates', '--pad-crop', '2',
            '--deterministic', '--output', str(tmp_path), '--threads', '1', '--no-progress']
    assert main([*args, '--experiment', 'straight']) == 0

    real = crash_in_epoch(monkeypatch, 2)
    with pytest.raises(Crash):
        main([*args, '--experiment', 'resumed'])
    monkeypatch.setattr(trainer, 'train_one_epoch', real)
    resumed = tmp_path / 'resumed'
    assert torch.load(resumed / 'last' / 'train_state.pt', weights_only=True)['epoch'] == 1
    # the saved config.yaml supplies every option; the command line only names the run
    assert main(['train', '--resume', str(resumed), '--threads', '1', '--no-progress']) == 0

    straight = tmp_path / 'straight'
    for name in ('model.safetensors', 'model_ema.safetensors'):
        a, b = load_state_dict_file(straight / 'last' / name), load_state_dict_file(resumed / 'last' / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f'{name}: {k} differs'
    sa = torch.load(straight / 'last' / 'train_state.pt', weights_only=True)
    sb = torch.load(resumed / 'last' / 'train_state.pt', weights_only=True)
    assert sa['num_updates'] == sb['num_updates'] == 8
    for pa, pb in zip(sa['optimizer']['state'].values(), sb['optimizer']['state'].values()):
        assert torch.equal(pa['momentum_buffer'], pb['momentum_buffer'])
    rows_a = (straight / 'metrics.csv').read_text().splitlines()
    rows_b = (resumed / 'metrics.csv').read_text().splitlines()
    assert len(rows_a) == len(rows_b) == 3
    assert [r.split(',')[1] for r in rows_a] == [r.split(',')[1] for r in rows_b]  # train losses


def test_resume_refuses_mismatched_state(tmp_path, capsys):
    data = make_fashion_mnist(tmp_path / 'data', n_train=32, n_test=16)
    args = ['train', '--model', 'resnet20_cifar', '--dataset', 'fashion_mnist', '--data-dir', str(data), '-b', '16',
            '--epochs', '1', '--output', str(tmp_path), '--experiment', 'r', '--threads', '1', '--no-progress']
    assert main(args) == 0
    run = tmp_path / 'r'
    state = torch.load(run / 'last' / 'train_state.pt', weights_only=True)
    state['epoch'] = 5  # as if the weights were written by another epoch than the state (interrupted save)
    torch.save(state, run / 'last' / 'train_state.pt')
    assert main(['train', '--resume', str(run), '--epochs', '6', '--threads', '1', '--no-progress']) == 2
    assert 'the weights (epoch 1) and the training state (epoch 5) do not match' in capsys.readouterr().err
