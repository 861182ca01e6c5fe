"""`banet detect train|validate|predict` end to end on a tiny COCO-layout set: run folder, exact resume, AP, PNGs."""
import json

import pytest
import torch

pytest.importorskip('pycocotools')

import banet  # noqa: E402,F401
from banet.cli import main  # noqa: E402
from banet.detection import load_detector  # noqa: E402
from banet.runs import loop as det_trainer  # noqa: E402  (fit's loop calls train_one_epoch)
from banet.io import load_state_dict_file  # noqa: E402

from _coco_data import SIZE, write_coco  # noqa: E402
from _train_data import Crash  # noqa: E402


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco')
    write_coco(root, 'train')
    return write_coco(root, 'val')


def _args(coco, out, name, *extra):
    return ['detect', 'train', '--arch', 'fasterrcnn', '--backbone', 'resnet18', '--data-dir', str(coco),
            '-b', '2', '--epochs', '2', '--lr', '0.01', '--warmup-epochs', '0', '--min-size', str(SIZE),
            '--max-size', str(SIZE), '--fpn-channels', '16', '--trainable-layers', '5', '--threads', '1',
            '--no-progress', '--output', str(out), '--experiment', name, *extra]


def test_train_resume_validate_predict(coco, tmp_path, monkeypatch, capsys):
    assert main(_args(coco, tmp_path, 'straight')) == 0
    run = tmp_path / 'straight'
    for name in ('config.yaml', 'metrics.csv', 'summary.png', 'last/model.safetensors', 'last/train_state.pt',
                 'last/config.json', 'best/model.safetensors'):
        assert (run / name).is_file(), name
    rows = (run / 'metrics.csv').read_text().strip().splitlines()
    assert len(rows) == 3 and 'bbox_AP50' in rows[0]
    assert json.loads((run / 'last' / 'config.json').read_text())['categories'] == {'1': 'red', '2': 'blue'}

    real = det_trainer.train_one_epoch
    calls = {'n': 0}

    def crashing(*args, **kwargs):
        calls['n'] += 1
        if calls['n'] == 2:
            raise Crash()
        return real(*args, **kwargs)
    monkeypatch.setattr(det_trainer, 'train_one_epoch', crashing)
    with pytest.raises(Crash):
        main(_args(coco, tmp_path, 'resumed'))
    monkeypatch.setattr(det_trainer, 'train_one_epoch', real)
    assert main(['detect', 'train', '--resume', str(tmp_path / 'resumed'), '--threads', '1', '--no-progress']) == 0
    a = load_state_dict_file(run / 'last' / 'model.safetensors')
    b = load_state_dict_file(tmp_path / 'resumed' / 'last' / 'model.safetensors')
    assert all(torch.equal(a[k], b[k]) for k in a), 'resume is not exact'

    results = tmp_path / 'r.json'
    assert main(['detect', 'validate', '--checkpoint', str(run), '--data-dir', str(coco), '--results-file',
                 str(results), '--threads', '1']) == 0
    metrics = json.loads(results.read_text())
    assert {'bbox_AP', 'bbox_AP50', 'bbox_AP75', 'bbox_APs'} <= set(metrics) and 0 <= metrics['bbox_AP50'] <= 1

    capsys.readouterr()
    assert main(['detect', 'predict', '--checkpoint', str(run), str(coco / 'val'), '--output-dir',
                 str(tmp_path / 'out'), '--score-thresh', '0.0']) == 0
    assert len(list((tmp_path / 'out').glob('*.png'))) == 4 and '1.png' in capsys.readouterr().out
    assert load_detector(run).categories == {1: 'red', 2: 'blue'}


def test_backbone_from_a_classification_checkpoint_and_clear_errors(coco, tmp_path, capsys):
    import timm
    classifier = timm.create_model('resnet18', num_classes=7)
    banet.save_pretrained(classifier, tmp_path / 'cls')
    assert main(_args(coco, tmp_path, 'init', '--epochs', '1', '--backbone-checkpoint', str(tmp_path / 'cls'),
                      '--trainable-layers', '0')) == 0
    assert 'backbone initialised from' in capsys.readouterr().out
    model = load_detector(tmp_path / 'init')
    got = model.backbone.features.body.state_dict()
    want = classifier.state_dict()
    assert torch.equal(got['conv1.weight'], want['conv1.weight'])  # frozen stages keep the initial weights
    assert main(['detect', 'train', '--data-dir', str(tmp_path / 'nothing'), '--output', str(tmp_path),
                 '--no-progress']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'annotations' in err[0] and 'instances_train.json' in err[0]


def test_shipped_detection_configs_parse():
    from pathlib import Path

    import yaml

    from banet.config import from_mapping
    from banet.detection import DetectTrainConfig
    for file in sorted((Path(__file__).resolve().parents[1] / 'configs' / 'detection').glob('*.yaml')):
        cfg = DetectTrainConfig(**from_mapping(DetectTrainConfig, yaml.safe_load(file.read_text()), str(file)))
        assert cfg.epochs >= 1 and cfg.arch in ('fasterrcnn', 'maskrcnn', 'retinanet', 'fcos'), file
