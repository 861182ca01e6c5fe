"""End-to-end `banet train` / `banet validate` on generated data, config files, and the clear errors."""
import csv
import json
from pathlib import Path

import pytest
import timm
import torch
import yaml

import banet  # noqa: F401  (registers the models)
from banet.cli import main
from banet.io import load_state_dict_file
from banet.train import data as data_mod
from banet.runs import step as engine

from _train_data import make_fashion_mnist, make_image_folder, train_config

FAST = ['--threads', '1', '--no-progress', '--workers', '0']


@pytest.fixture(scope='module')
def folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp('imgs'))


@pytest.fixture(scope='module')
def fmnist(tmp_path_factory) -> Path:
    return make_fashion_mnist(tmp_path_factory.mktemp('fmnist'))


def test_train_then_validate_image_folder(folder, tmp_path, capsys):
    rc = main(['train', '--model', 'ba_resnet20_cifar', '--data-dir', str(folder), '--img-size', '24',
               '--scale', '0.5', '1', '--aa', 'rand-m9-mstd0.5-inc1', '--reprob', '0.25', '--mixup', '0.2',
               '--cutmix', '1.0', '--smoothing', '0.1', '--model-ema', '--clip-grad', '1.0', '--opt', 'adamw',
               '--lr', '1e-3', '--weight-decay', '0.05', '--warmup-epochs', '1', '-b', '6', '--epochs', '2',
               '--output', str(tmp_path), '--experiment', 'run', *FAST])
    assert rc == 0
    run = tmp_path / 'run'
    out = capsys.readouterr().out
    assert 'config (saved to' in out and str(run / 'summary.png') in out
    for name in ('config.yaml', 'metrics.csv', 'summary.png', 'last/model.safetensors', 'last/model_ema.safetensors',
                 'last/train_state.pt', 'last/config.json', 'best/model.safetensors', 'best/config.json'):
        assert (run / name).is_file(), name
    rows = (run / 'metrics.csv').read_text().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith('epoch,train_loss')
    # config.json rebuilds the model with timm alone, and the weights fit it strictly
    cfg = json.loads((run / 'best' / 'config.json').read_text())
    model = timm.create_model(cfg['architecture'], num_classes=cfg['num_classes'], in_chans=cfg['in_chans'])
    model.load_state_dict(load_state_dict_file(run / 'best' / 'model.safetensors'))
    assert cfg['num_classes'] == 3 and cfg['pretrained_cfg']['input_size'] == [3, 24, 24]
    # the training state loads with weights_only=True (no pickle trust needed)
    state = torch.load(run / 'last' / 'train_state.pt', weights_only=True)
    assert state['epoch'] == 2 and state['num_updates'] == 2 * (18 // 6)

    result_file = tmp_path / 'val.json'
    assert main(['validate', '--checkpoint', str(run), '--data-dir', str(folder), '-b', '4',
                 '--results-file', str(result_file), *FAST]) == 0
    result = json.loads(result_file.read_text())
    assert result['count'] == 18 and result['checkpoint'].endswith('best/model.safetensors')
    assert result['top1'] == pytest.approx(cfg['metrics']['val_top1'])  # same weights, same data → same score
    assert result['loss'] == pytest.approx(cfg['metrics']['val_loss'], rel=1e-5)
    assert main(['validate', '--checkpoint', str(run / 'last'), '--use-ema', '--data-dir', str(folder),
                 '--results-file', str(result_file), *FAST]) == 0
    assert json.loads(result_file.read_text())['checkpoint'].endswith('last/model_ema.safetensors')


def test_config_file_and_command_line_override(fmnist, tmp_path, capsys):
    cfg = tmp_path / 'cfg.yaml'
    cfg.write_text(yaml.safe_dump({'model': 'resnet20_cifar', 'dataset': 'fashion_mnist', 'epochs': 2,
                                   'batch_size': 32, 'lr': '1e-2', 'val_interval': 2}))
    assert main(['train', '-c', str(cfg), '--data-dir', str(fmnist), '-b', '16', '--output', str(tmp_path),
                 '--experiment', 'r', *FAST]) == 0
    saved = yaml.safe_load((tmp_path / 'r' / 'config.yaml').read_text())
    assert saved['model'] == 'resnet20_cifar' and saved['lr'] == 1e-2  # from the file (YAML '1e-2' string typed)
    assert saved['batch_size'] == 16  # the command line wins
    assert torch.load(tmp_path / 'r' / 'last' / 'train_state.pt', weights_only=True)['num_updates'] == 2 * 64 // 16
    assert 'batch_size: 16' in capsys.readouterr().out
    with open(tmp_path / 'r' / 'metrics.csv') as f:
        rows = list(csv.DictReader(f))
    assert rows[0]['val_top1'] == 'nan' and 0 <= float(rows[1]['val_top1']) <= 100  # validated every 2nd epoch


def test_torchcompile_wiring(fmnist, tmp_path):
    # the 'eager' backend exercises torch.compile's tracing without generating code (inductor takes minutes)
    assert main(['train', '--model', 'resnet20_cifar', '--dataset', 'fashion_mnist', '--data-dir', str(fmnist),
                 '-b', '32', '--epochs', '1', '--compile', '--compile-backend', 'eager', '--channels-last', '--output', str(tmp_path),
                 '--experiment', 'c', *FAST]) == 0
    weights = load_state_dict_file(tmp_path / 'c' / 'last' / 'model.safetensors')
    assert not any(k.startswith('_orig_mod') for k in weights)  # saved from the plain model


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'banet {argv[0]}: error:') and '\n' not in err
    return err


def test_clear_errors_before_any_work(fmnist, folder, tmp_path, capsys, monkeypatch):
    out = ['--output', str(tmp_path / 'runs'), *FAST]
    err = _error(capsys, ['train', '--model', 'no_such_net', '--dataset', 'fashion_mnist', '--data-dir',
                          str(fmnist), *out])
    assert "unknown model 'no_such_net'" in err
    err = _error(capsys, ['train', '--model', 'resnet20_cifar', '--data-dir', str(tmp_path / 'missing'), *out])
    assert 'missing/train does not exist' in err
    bad = tmp_path / 'bad.yaml'
    bad.write_text('model: resnet20_cifar\nlearning_rate: 0.1\n')
    with pytest.raises(SystemExit) as e:  # a config error is a usage error, reported by argparse
        main(['train', '-c', str(bad), '--data-dir', str(folder), *out])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"banet train: error: config file {bad}: unknown key(s) ['learning_rate']" in err
    bad.write_text('model: resnet20_cifar\ndataset: imagenet21k\n')
    err = _error(capsys, ['train', '-c', str(bad), '--data-dir', str(folder), *out])
    assert "unknown dataset 'imagenet21k'" in err
    monkeypatch.setattr(data_mod, 'DEBIAN_FASHION_MNIST', tmp_path / 'not-installed')
    err = _error(capsys, ['validate', '--model', 'resnet20_cifar', '--dataset', 'fashion_mnist', '--data-dir',
                          str(tmp_path / 'nothing'), *FAST])
    assert '--data-dir' in err and 'apt-get install dataset-fashion-mnist' in err and '--download' in err
    assert not (tmp_path / 'runs').exists()  # nothing was started


def test_unknown_dataset_on_command_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(['train', '--model', 'resnet20_cifar', '--dataset', 'mnist'])
    assert e.value.code == 2 and "invalid choice: 'mnist'" in capsys.readouterr().err


def test_unreadable_image_is_named(folder, tmp_path, capsys):
    broken = tmp_path / 'data'
    make_image_folder(broken, classes=2, per_class=4)
    (broken / 'train' / 'class1' / '2.png').write_bytes(b'not a png')
    err = _error(capsys, ['train', '--model', 'resnet20_cifar', '--data-dir', str(broken), '-b', '8',
                          '--img-size', '24', '--epochs', '1', '--output', str(tmp_path), *FAST])
    assert 'cannot read image' in err and str(broken / 'train' / 'class1' / '2.png') in err


def test_nan_loss_stops_and_keeps_last_good_checkpoint(fmnist, tmp_path, capsys, monkeypatch):
    args = ['train', '--model', 'resnet20_cifar', '--dataset', 'fashion_mnist', '--data-dir', str(fmnist),
            '-b', '16', '--output', str(tmp_path), '--experiment', 'r', *FAST]
    assert main([*args, '--epochs', '1']) == 0
    weights = tmp_path / 'r' / 'last' / 'model.safetensors'
    good = weights.read_bytes()
    calls = {'n': 0}
    real_forward = engine.train_one_epoch.__globals__['nn'].CrossEntropyLoss.forward

    def forward(self, x, y):  # the 3rd training step of the resumed run produces NaN
        calls['n'] += 1
        loss = real_forward(self, x, y)
        return loss * float('nan') if calls['n'] == 3 else loss

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, 'forward', forward)
    err = _error(capsys, ['train', '--resume', str(tmp_path / 'r'), '--epochs', '2', *FAST])
    assert 'loss is nan at epoch 2, step 3 of 4 (update 7)' in err
    assert weights.read_bytes() == good
    assert torch.load(tmp_path / 'r' / 'last' / 'train_state.pt', weights_only=True)['epoch'] == 1


def test_pickle_checkpoint_refused_without_flag(tmp_path, fmnist, capsys):
    model = timm.create_model('resnet20_cifar', num_classes=10, in_chans=1)
    path = tmp_path / 'w.pth'
    torch.save({'state_dict': model.state_dict(), 'args': _Opaque()}, path)
    err = _error(capsys, ['validate', '--model', 'resnet20_cifar', '--checkpoint', str(path), '--dataset',
                          'fashion_mnist', '--data-dir', str(fmnist), *FAST])
    assert '--trust-pickle' in err


class _Opaque:
    pass


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('recipe', sorted(p for p in (REPO / 'configs').glob('*/*.yaml')
                                          if p.parent.name not in ('study', 'detection')),
                         ids=lambda p: p.stem)  # study/, detection/: tests/test_study.py, tests/test_detect_cli.py
def test_recipes_parse(recipe):
    args = train_config('-c', str(recipe))
    assert timm.is_model(args.model) and args.dataset in ('folder', 'fashion_mnist')
    assert args.epochs >= 1 and args.lr > 0


@pytest.mark.parametrize('recipe', ['ba_resnet50', 'bav1_resnet50'])
def test_imagenet_recipe_runs_on_a_tiny_folder(recipe, folder, tmp_path):
    """Every option of the ImageNet recipes (AdamW/SGD, warmup+cosine per update, clipping, AMP with a loss
    scaler, channels_last, RandAugment, erasing, mixup/cutmix) on a small model and a generated folder."""
    rc = main(['train', '-c', str(REPO / 'configs' / 'imagenet' / f'{recipe}.yaml'), '--model', 'resnet20_cifar',
               '--num-classes', '3', '--data-dir', str(folder), '--img-size', '24', '-b', '6', '--epochs', '1',
               '--warmup-epochs', '0', '--output', str(tmp_path), '--experiment', 'r', *FAST])
    assert rc == 0
    saved = yaml.safe_load((tmp_path / 'r' / 'config.yaml').read_text())
    assert saved['amp'] and saved['crop_pct'] == 0.875 and saved['smoothing'] == 0.1
