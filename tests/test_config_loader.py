"""Typed configs (kinds, --no- overrides, YAML checks), precision decisions, the one checkpoint loader, CLI errors."""
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import banet
from banet.cli import main
from banet.config import KINDS, from_mapping
from banet.errors import BanetError
from banet.io import find_checkpoint, load_model, load_weights, read_checkpoint, save_state_dict_file
from banet.runs import precision as precision_mod
from banet.train import TrainConfig, ValidateConfig, train, validate
from banet.io.idx import read_idx
from banet.train.options import default_workers

from _deploy import save_tiny
from _train_data import make_fashion_mnist, make_image_folder, train_config
from official_reference import OfficialResNet, randomize_


@pytest.mark.parametrize('cls', [TrainConfig, ValidateConfig])
def test_every_option_has_a_kind_and_help(cls):
    for f in dataclasses.fields(cls):
        assert f.metadata.get('kind') in KINDS, f'{cls.__name__}.{f.name} is not classified'
        assert f.metadata.get('help'), f'{cls.__name__}.{f.name} has no help text'


def test_command_line_overrides_a_config_file_both_ways(tmp_path):
    recipe = tmp_path / 'r.yaml'
    recipe.write_text('model: resnet20_cifar\namp: true\nchannels_last: true\nprogress: false\nlr: 0.3\n')
    cfg = train_config('-c', str(recipe))
    assert cfg.amp is True and cfg.channels_last is True and cfg.progress is False and cfg.lr == 0.3
    cfg = train_config('-c', str(recipe), '--no-amp', '--no-channels-last', '--progress', '--lr', '0.1')
    assert cfg.amp is False and cfg.channels_last is False and cfg.progress is True and cfg.lr == 0.1
    assert train_config('-c', str(recipe), '--amp', 'auto').amp == 'auto'
    assert train_config('--model', 'resnet20_cifar', '--amp').amp is True


def test_bad_config_values_name_the_key(tmp_path):
    recipe = tmp_path / 'r.yaml'
    recipe.write_text('model: resnet20_cifar\nepochs: many\n')
    with pytest.raises(BanetError, match="argument --epochs: invalid int value: 'many'"):
        from_mapping(TrainConfig, {'epochs': 'many'}, 'r.yaml')
    assert from_mapping(TrainConfig, {'lr': '1e-3', 'amp': 'auto'}, 'r.yaml') == {'lr': 1e-3, 'amp': 'auto'}
    with pytest.raises(BanetError, match=r"unknown key\(s\) \['learning_rate'\]"):
        from_mapping(TrainConfig, {'learning_rate': 0.1}, 'r.yaml')
    with pytest.raises(SystemExit):  # on the command line a bad config file is a usage error
        train_config('-c', str(recipe))


@pytest.mark.parametrize('argv, message', [
    (['--lr', '0'], '--lr must be above 0, got 0.0'),
    (['--warmup-epochs', '-1'], '--warmup-epochs must be >= 0, got -1.0'),
    (['--warmup-lr=-1e-5'], '--warmup-lr must be >= 0'),
    (['--weight-decay', '-0.1'], '--weight-decay must be >= 0'),
    (['--warmup-epochs', '0.5'], 'add --sched-on-updates'),
])
def test_bad_optimiser_values_are_one_line_before_any_work(argv, message):
    with pytest.raises(BanetError, match=message):
        train_config('--model', 'resnet20_cifar', *argv)
    assert train_config('--model', 'resnet20_cifar', '--warmup-epochs', '0.5', '--sched-on-updates').warmup_epochs == 0.5


def test_dense_runs_warm_up_over_a_fraction_of_an_epoch():
    """Detection and segmentation step the schedule per update: warmup_epochs 0.5 of 10 updates is 5 updates."""
    from banet.detection.options import DetectTrainConfig
    from banet.runs.optim import build_scheduler
    from banet.segmentation.options import SegmentTrainConfig
    assert from_mapping(DetectTrainConfig, {'warmup_epochs': 0.5}) == {'warmup_epochs': 0.5}
    with pytest.raises(BanetError, match='--warmup-epochs must be >= 0'):
        SegmentTrainConfig(data_dir='d', warmup_epochs=-0.5).check()
    cfg = DetectTrainConfig(data_dir='d', lr=0.1, warmup_lr=0.0, warmup_epochs=0.5, sched='cosine', epochs=2)
    cfg.check()
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler, epochs = build_scheduler(cfg, optimizer, updates_per_epoch=10)
    lrs = []
    for update in range(8):
        scheduler.step_update(update)
        lrs.append(optimizer.param_groups[0]['lr'])
    assert epochs == 2
    assert lrs[:5] == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])  # linear from warmup_lr over 5 updates
    assert lrs[5] == pytest.approx(0.1 * 0.5 * (1 + np.cos(np.pi * 5 / 20)))  # then cosine over all 20 updates


def test_default_workers_never_exceed_the_cpus():
    assert 1 <= default_workers() <= min(4, len(os.sched_getaffinity(0)))


@pytest.mark.parametrize('native', [True, False])
def test_auto_precision_follows_the_cpu(monkeypatch, native):
    monkeypatch.setattr(precision_mod, 'cpu_has_native_bf16', lambda: native)
    cpu = torch.device('cpu')
    auto = precision_mod.resolve_precision('auto', 'bfloat16', 'auto', cpu)
    assert auto.dtype == (torch.bfloat16 if native else None) and auto.channels_last == native
    assert ('has native bfloat16' in auto.reason) == native
    forced = precision_mod.resolve_precision(True, 'bfloat16', False, cpu)  # explicit choices are kept
    assert forced.dtype == torch.bfloat16 and not forced.channels_last
    assert precision_mod.resolve_precision(False, 'bfloat16', 'auto', cpu).dtype is None


def test_idx_reader_checks_the_header(tmp_path):
    folder = make_fashion_mnist(tmp_path / 'f', n_train=12, n_test=4)
    assert read_idx(folder / 'train-images-idx3-ubyte.gz').shape == (12, 28, 28)
    (tmp_path / 'bad').write_bytes(b'\x01\x02\x03\x04')
    with pytest.raises(BanetError, match='not an IDX file'):
        read_idx(tmp_path / 'bad')


def test_python_api_example_runs_as_written(tmp_path, monkeypatch):
    make_image_folder(tmp_path / 'digits', classes=3, per_class=6, size=24)
    monkeypatch.chdir(tmp_path)
    result = train(TrainConfig(model='ba_resnet20_cifar', dataset='folder', data_dir='digits', epochs=1,
                               batch_size=4, output='runs', experiment='py', workers=0, progress=False, img_size=24,
                               threads=1))
    assert Path(result['run_dir']) == Path('runs/py') and (tmp_path / 'runs/py/best/model.safetensors').is_file()
    out = validate(ValidateConfig(checkpoint='runs/py', dataset='folder', data_dir='digits', workers=0,
                                  progress=False, batch_size=4))
    assert out['count'] == 18 and out['model'] == 'ba_resnet20_cifar'


def test_the_loader_takes_every_kind_of_source(tmp_path):
    folder = save_tiny(tmp_path / 'saved')
    want = banet.load_pretrained(folder)
    x = torch.randn(2, 1, 16, 16)
    run = tmp_path / 'run'
    (run / 'best').mkdir(parents=True)
    for f in folder.iterdir():
        (run / 'best' / f.name).write_bytes(f.read_bytes())
    bare = save_state_dict_file(want.state_dict(), tmp_path / 'bare.safetensors')
    sources = [folder, f'local-dir:{folder}', run, run / 'best', run / 'best' / 'model.safetensors']
    with torch.no_grad():
        for source in sources:
            assert torch.equal(load_model(source)(x), want(x)), source
        got = load_model(bare, 'ba_resnet20_cifar', in_chans=1)  # bare weights: the name is needed
        assert torch.equal(got(x), want(x)) and got.num_classes == want.num_classes
    with pytest.raises(BanetError, match='holds no config.json: give the model name'):
        load_model(bare)
    assert find_checkpoint(run) == (run / 'best' / 'model.safetensors', run / 'best' / 'config.json')


def test_the_loader_converts_official_checkpoints(tmp_path):
    official = randomize_(OfficialResNet('bav2_v2_1', [2, 2, 2, 2], False, 5))
    sd = official.state_dict()
    path = tmp_path / 'ba_resnet18_v2_1.pth.tar'
    torch.save({'state_dict': {f'module.{k}': v for k, v in sd.items()}, 'epoch': 3}, path)
    ckpt = read_checkpoint(path)
    assert ckpt.layout == 'bav2_v2_1' and ckpt.config is None
    model = load_model(path, 'ba_resnet18')
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), official.eval()(x), atol=1e-4, rtol=1e-4)
    fresh = timm.create_model('ba_resnet18', num_classes=5)
    load_weights(fresh, path)
    with pytest.raises(BanetError, match='does not fit'):
        load_weights(timm.create_model('ba_resnet18', num_classes=7), path)


def test_a_pytorch_error_keeps_its_traceback_and_a_user_error_is_one_line(tmp_path, capsys, monkeypatch):
    folder = save_tiny(tmp_path / 'saved')
    img = tmp_path / 'a.png'
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(img)

    def broken_forward(self, x):
        raise RuntimeError('mat1 and mat2 shapes cannot be multiplied')
    monkeypatch.setattr(type(banet.load_pretrained(folder)), 'forward', broken_forward)
    with pytest.raises(RuntimeError, match='mat1 and mat2'):
        main(['predict', '--model', str(folder), str(img)])
    assert main(['predict', '--model', str(tmp_path / 'nowhere'), str(img)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'no such checkpoint folder or file' in err[0]
    with pytest.raises(BanetError):
        main(['--debug', 'predict', '--model', str(tmp_path / 'nowhere'), str(img)])


def test_a_corrupt_image_in_a_loader_worker_is_one_line_naming_it(tmp_path, capsys):
    data = make_image_folder(tmp_path / 'img', classes=2, per_class=4, size=24)
    bad = data / 'train' / 'class0' / '0.png'
    bad.write_bytes(b'not a png')
    assert main(['train', '--model', 'resnet20_cifar', '--dataset', 'folder', '--data-dir', str(data), '-b', '4',
                 '--epochs', '1', '--img-size', '24', '--workers', '1', '--no-progress', '--threads', '1',
                 '--output', str(tmp_path / 'runs'), '--experiment', 'e']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f'cannot read image {bad}' in err[0] and 'Traceback' not in err[0]


def test_timm_loads_an_official_checkpoint_through_its_own_pretrained_path(tmp_path):
    official = randomize_(OfficialResNet('bav1', [2, 2, 2, 2], False, 5))
    path = tmp_path / 'bav1_resnet18.pth'
    torch.save({'state_dict': {f'module.{k}': v for k, v in official.state_dict().items()}}, path)
    model = timm.create_model('bav1_resnet18', pretrained=True, num_classes=5,
                              pretrained_cfg_overlay=dict(file=str(path), num_classes=5)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), official.eval()(x), atol=1e-4, rtol=1e-4)
