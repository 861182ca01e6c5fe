"""banet.save_pretrained / load_pretrained, timm's local-dir: source, training checkpoints, and broken folders."""
import json
import shutil

import pytest
import timm
import torch
from torchvision.datasets import FashionMNIST

import banet
from banet.cli import main
from banet.io import load_state_dict_file
from banet.io import model_config
from banet.train.data import dataset_spec

from _deploy import DATA_CONFIG, LABELS, save_tiny, tiny_model
from _train_data import make_fashion_mnist, make_image_folder


@pytest.fixture(scope='module')
def saved_once(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp('hub') / 'saved')


@pytest.fixture
def saved(saved_once, tmp_path):
    """A fresh copy of the saved folder, for a test to break."""
    return shutil.copytree(saved_once, tmp_path / 'saved')


@pytest.mark.parametrize('name,in_chans,kwargs', [
    ('ba_resnet20_cifar', 1, {}),
    ('bav1_resnet18', 3, {'output_stride': 16}),  # a construction argument the config must carry
])
def test_save_pretrained_restores_through_timm_local_dir(tmp_path, name, in_chans, kwargs):
    model = tiny_model(name, in_chans=in_chans, num_classes=3, **kwargs)
    folder = banet.save_pretrained(model, tmp_path / 'saved', label_names=['a', 'b', 'c'])
    assert sorted(p.name for p in folder.iterdir()) == ['config.json', 'model.safetensors']
    x = torch.randn(2, in_chans, 32, 32)
    with torch.no_grad():
        want = model(x)
        for loaded in (timm.create_model(f'local-dir:{folder}', pretrained=True).eval(),
                       banet.load_pretrained(folder)):
            assert type(loaded) is type(model) and not loaded.training
            assert torch.equal(loaded(x), want)
            assert loaded.pretrained_cfg['label_names'] == ['a', 'b', 'c']
            assert tuple(loaded.pretrained_cfg['input_size']) == (in_chans, *model.pretrained_cfg['input_size'][1:])
    # without the recorded output_stride, timm would rebuild an undilated net that loads but computes otherwise
    if kwargs:
        plain = timm.create_model(name, num_classes=3, in_chans=in_chans).eval()
        plain.load_state_dict(model.state_dict())
        with torch.no_grad():
            assert not torch.allclose(plain(x), want, atol=1e-3)


def test_config_carries_preprocessing_and_reloads_identically(saved, tmp_path):
    folder = saved
    cfg = json.loads((folder / 'config.json').read_text())
    assert cfg['architecture'] == 'ba_resnet20_cifar' and cfg['num_classes'] == 4 and cfg['in_chans'] == 1
    assert cfg['label_names'] == LABELS and cfg['model_args'] == {'num_classes': 4, 'in_chans': 1}
    assert cfg['pretrained_cfg']['input_size'] == [1, 16, 16] and cfg['pretrained_cfg']['mean'] == [0.3]
    assert 'pool_size' not in cfg['pretrained_cfg']  # 16 px, not the default 32 px: no stale final map size
    # a loaded model saves to the same config (names and preprocessing survive a round trip)
    again = banet.save_pretrained(banet.load_pretrained(folder), tmp_path / 'again')
    assert json.loads((again / 'config.json').read_text()) == cfg


def test_training_checkpoint_loads_through_timm_local_dir(tmp_path):
    data = make_image_folder(tmp_path / 'imgs', per_class=4, size=16)
    assert main(['train', '--model', 'ba_resnet20_cifar', '--data-dir', str(data), '--img-size', '16', '-b', '4',
                 '--epochs', '1', '--output', str(tmp_path), '--experiment', 'run', '--threads', '1',
                 '--no-progress', '--workers', '0', '--model-ema']) == 0
    best = tmp_path / 'run' / 'best'
    cfg = json.loads((best / 'config.json').read_text())
    assert cfg['label_names'] == ['class0', 'class1', 'class2'] and cfg['epoch'] == 1
    manual = timm.create_model('ba_resnet20_cifar', num_classes=3).eval()
    manual.load_state_dict(load_state_dict_file(best / 'model.safetensors'))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        via_timm = timm.create_model(f'local-dir:{best}', pretrained=True).eval()
        assert torch.equal(via_timm(x), manual(x))
        assert torch.equal(banet.load_pretrained(tmp_path / 'run')(x), manual(x))  # a run folder: best/
    assert via_timm.pretrained_cfg['label_names'] == cfg['label_names']
    manual.load_state_dict(load_state_dict_file(best / 'model_ema.safetensors'))
    with torch.no_grad():
        assert torch.equal(banet.load_pretrained(best, use_ema=True)(x), manual(x))


def test_fashion_mnist_spec_names_its_classes(tmp_path):
    args = type('Args', (), {'dataset': 'fashion_mnist', 'data_dir': str(make_fashion_mnist(tmp_path)),
                             'download': False})()
    spec = dataset_spec(args, ['val'])
    assert spec.class_names == tuple(FashionMNIST.classes) and len(spec.class_names) == spec.num_classes == 10


def test_model_config_refuses_what_cannot_be_rebuilt():
    model = tiny_model()
    with pytest.raises(ValueError, match='3 label names for a model with 4 classes'):
        model_config(model, DATA_CONFIG, ['a', 'b', 'c'])
    with pytest.raises(ValueError, match='3-channel input to a model that takes 1 channels'):
        model_config(model, {**DATA_CONFIG, 'input_size': (3, 16, 16)})
    from timm.models.resnet import ResNet
    with pytest.raises(ValueError, match='timm.create_model'):
        model_config(ResNet(block=banet.BABasicBlock, layers=(1, 1, 1, 1)))
    with pytest.raises(ValueError, match='fused'):
        banet.save_pretrained(banet.fuse(model), 'never-written')


def test_missing_files_are_named(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match='no such checkpoint folder'):
        banet.load_pretrained(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='no model_ema.safetensors .was the run trained with --model-ema'):
        banet.load_pretrained(saved, use_ema=True)
    (saved / 'model.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='has config.json but no model.safetensors'):
        banet.load_pretrained(saved)
    (saved / 'config.json').unlink()
    with pytest.raises(FileNotFoundError, match='holds no config.json'):
        banet.load_pretrained(saved)


def test_corrupt_files_are_named(saved):
    (saved / 'model.safetensors').write_bytes(b'\x00' * 40)
    with pytest.raises(ValueError, match='model.safetensors is not a readable safetensors file'):
        banet.load_pretrained(saved)
    (saved / 'config.json').write_text('{"architecture": "ba_resnet20_cifar", ')
    with pytest.raises(ValueError, match='config.json is not valid JSON'):
        banet.load_pretrained(saved)


def test_unknown_model_and_mismatched_weights(saved):
    cfg = json.loads((saved / 'config.json').read_text())
    (saved / 'config.json').write_text(json.dumps({**cfg, 'architecture': 'ba_resnet20_cifr'}))
    with pytest.raises(ValueError, match=r"unknown model 'ba_resnet20_cifr' \(close: ba_resnet20_cifar"):
        banet.load_pretrained(saved)
    cfg['num_classes'] = cfg['model_args']['num_classes'] = 7
    (saved / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r'does not fit ba_resnet20_cifar .*num_classes 7.*wrong shape \[\'fc'):
        banet.load_pretrained(saved)


def test_pickle_weights_need_trust(saved):
    want = banet.load_pretrained(saved)
    sd = load_state_dict_file(saved / 'model.safetensors')
    (saved / 'model.safetensors').unlink()
    torch.save(sd, saved / 'pytorch_model.bin')
    with pytest.raises(ValueError, match='only the pickle pytorch_model.bin; only safetensors'):
        banet.load_pretrained(saved)
    got = banet.load_pretrained(saved, trust_pickle=True)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(got(x), want(x))


def test_cli_reports_a_broken_folder_in_one_line(saved, tmp_path, capsys):
    shutil.copy(saved / 'config.json', tmp_path / 'img.png')  # any file: the model fails first
    (saved / 'model.safetensors').write_bytes(b'broken')
    assert main(['predict', '--model', str(saved), str(tmp_path / 'img.png')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('banet predict: error: ') and 'model.safetensors' in err[0]
