"""The run layer: the checkpoint writer's intermediate states, the options every task shares (model_kwargs, amp
auto, the float16 scaler in the training state), and the argparse binding kept out of banet.config."""
import json
import shutil

import pytest
import torch
import yaml

import banet.config
from banet.cli import main
from banet.config import from_mapping, parse_key_values
from banet.detection import DetectTrainConfig
from banet.io import load_model
from banet.runs import complete_checkpoint, load_train_state, save_checkpoint, settle
from banet.segmentation import SegmentTrainConfig
from banet.train import TrainConfig

from _train_data import make_fashion_mnist


def _folder(tmp_path, name, epoch):
    model = torch.nn.Linear(2, 2)
    return save_checkpoint(tmp_path / name, model, {'epoch': epoch}, None, {'epoch': epoch, 'rng': []})


def test_every_intermediate_state_of_a_save_has_one_complete_folder(tmp_path):
    last = _folder(tmp_path, 'last', 1)
    assert complete_checkpoint(last) == last and load_train_state(last)['epoch'] == 1
    new, old = tmp_path / '.last.new', tmp_path / '.last.old'
    # killed while writing the new folder: the previous one is the complete one, the partial one goes
    shutil.copytree(last, new)
    (new / 'train_state.pt').unlink()
    assert complete_checkpoint(last) == last
    assert settle(last) == last and not new.exists()
    # killed between the renames: no last/, the new folder was finished before the old one was moved
    shutil.copytree(last, old)
    _folder(tmp_path, 'epoch2', 2).rename(new)
    shutil.rmtree(last)
    assert complete_checkpoint(last) == new and load_train_state(new)['epoch'] == 2
    assert settle(last) == last and load_train_state(last)['epoch'] == 2 and not old.exists() and not new.exists()
    # killed after the renames: the old folder is left over
    shutil.copytree(last, old)
    assert complete_checkpoint(last) == last and settle(last) == last and not old.exists()
    # a first save killed part-way: nothing complete
    shutil.rmtree(last)
    _folder(tmp_path, 'partial', 1).rename(new)
    assert complete_checkpoint(last) is None and settle(last) is None and not new.exists()


def test_a_save_replaces_the_folder_whole(tmp_path):
    _folder(tmp_path, 'last', 1)
    (tmp_path / 'last' / 'stale.txt').write_text('from an older banet')
    _folder(tmp_path, 'last', 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last']
    assert sorted(p.name for p in (tmp_path / 'last').iterdir()) == ['config.json', 'model.safetensors',
                                                                     'train_state.pt']


def test_model_kwargs_from_yaml_and_the_command_line():
    assert parse_key_values(['ba_reduction=8', 'ba_version=v1', 'flag=true']) == {
        'ba_reduction': 8, 'ba_version': 'v1', 'flag': True}
    with pytest.raises(ValueError, match='expected KEY=VALUE'):
        parse_key_values(['ba_reduction'])
    for cls in (TrainConfig, DetectTrainConfig, SegmentTrainConfig):
        assert from_mapping(cls, {'model_kwargs': {'ba_reduction': 8}})['model_kwargs'] == {'ba_reduction': 8}
        assert from_mapping(cls, {'model_kwargs': ['ba_version=v1']})['model_kwargs'] == {'ba_version': 'v1'}
        with pytest.raises(ValueError, match='invalid KEY: VALUE mapping'):
            from_mapping(cls, {'model_kwargs': 3})


def test_every_task_has_the_machine_options_with_amp_auto():
    for cls in (TrainConfig, DetectTrainConfig, SegmentTrainConfig):
        cfg = cls()
        assert (cfg.amp, cfg.channels_last, cfg.compile, cfg.progress) == ('auto', 'auto', False, True)
        assert {'resume', 'experiment', 'output', 'seed', 'model_ema', 'grad_accum_steps', 'clip_grad',
                'model_kwargs', 'trust_pickle', 'compile_backend'} <= set(vars(cfg))


def test_the_schema_knows_no_argparse():
    assert 'argparse' not in vars(banet.config) and not hasattr(banet.config, 'add_options')


def test_model_kwargs_reach_the_model_and_its_checkpoint(tmp_path, capsys):
    data = make_fashion_mnist(tmp_path / 'data', n_train=16, n_test=8)
    recipe = tmp_path / 'r.yaml'
    recipe.write_text(yaml.safe_dump({'model_kwargs': {'block_args': {'ba_reduction': 16}}}))
    args = ['train', '--model', 'ba_resnet20_cifar', '--dataset', 'fashion_mnist', '--data-dir', str(data), '-b', '8',
            '--epochs', '1', '--threads', '1', '--no-progress', '--output', str(tmp_path), '--experiment', 'k',
            '-c', str(recipe)]
    # the command line replaces the file's mapping: reduction 8 and BAv1 bridges in every block
    assert main([*args, '--model-kwargs', 'block_args={ba_reduction: 8, ba_version: v1}']) == 0
    saved = yaml.safe_load((tmp_path / 'k' / 'config.yaml').read_text())
    assert saved['model_kwargs'] == {'block_args': {'ba_reduction': 8, 'ba_version': 'v1'}}
    config = json.loads((tmp_path / 'k' / 'last' / 'config.json').read_text())
    assert config['model_args']['block_args'] == {'ba_reduction': 8, 'ba_version': 'v1'}
    model = load_model(str(tmp_path / 'k'))  # rebuilt from config.json alone, the weights fit strictly
    assert model.layer1[0].ba.fc.in_features == 16 // 8 and model.layer1[0].ba.version == 'v1'
    # the short form: the model's own keywords reach every block, rebuilt alike from the checkpoint
    assert main([*args, '--experiment', 'short', '--model-kwargs', 'ba_reduction=8', 'ba_version=v1']) == 0
    short = load_model(str(tmp_path / 'short'))
    assert {(b.ba.hidden, b.ba.version) for b in short.modules() if hasattr(b, 'ba')} == {(16 // 8, 'v1'), (4, 'v1'),
                                                                                         (8, 'v1')}
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:  # argparse's usage error
        main([*args, '--model-kwargs', 'ba_reduction'])
    assert stop.value.code == 2 and 'expected KEY=VALUE' in capsys.readouterr().err


def test_a_float16_detection_run_resumes_its_loss_scaler(tmp_path):
    pytest.importorskip('pycocotools')
    from _coco_data import SIZE, write_coco
    coco = write_coco(tmp_path / 'coco', 'train')
    write_coco(tmp_path / 'coco', 'val')

    def args(name, epochs):
        return ['detect', 'train', '--arch', 'fasterrcnn', '--backbone', 'resnet18', '--data-dir', str(coco), '-b',
                '2', '--epochs', str(epochs), '--lr', '0.01', '--warmup-epochs', '0', '--min-size', str(SIZE),
                '--max-size', str(SIZE), '--fpn-channels', '16', '--trainable-layers', '5', '--amp', 'true',
                '--amp-dtype', 'float16', '--threads', '1', '--no-progress', '--output', str(tmp_path),
                '--experiment', name]
    assert main(args('resumed', 1)) == 0
    first = torch.load(tmp_path / 'resumed' / 'last' / 'train_state.pt', weights_only=True)
    assert main(['detect', 'train', '--resume', str(tmp_path / 'resumed'), '--epochs', '2', '--threads', '1',
                 '--no-progress']) == 0
    state = torch.load(tmp_path / 'resumed' / 'last' / 'train_state.pt', weights_only=True)
    # one update per epoch, none skipped (the scale stays): a scaler restored after the resume has counted both,
    # a fresh one (the old drift) only the second
    assert first['scaler']['_growth_tracker'] == first['num_updates'] == 1
    assert state['scaler']['_growth_tracker'] == state['num_updates'] == 2
    assert state['scaler']['scale'] == first['scaler']['scale']
