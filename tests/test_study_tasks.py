"""`banet study` drives detection and segmentation: backbones as variants, the task's metric in the report."""
import json

import pytest
import yaml

pytest.importorskip('pycocotools')

from banet.cli import main  # noqa: E402
from banet.errors import BanetError  # noqa: E402
from banet.study.run import load_study, study_recipe  # noqa: E402

from _coco_data import write_coco  # noqa: E402

# the example of the issue, word for word (the folders are relative to the working directory)
EXAMPLE = '''\
name: digits
task: detect
variants: [resnet18, ba_resnet18]
seeds: [0]
output: runs/study/digits
results: results/digits
report: results/digits.md
recipe: {arch: fcos, min_size: 96, max_size: 96, epochs: 1, batch_size: 2}
'''


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco')
    write_coco(root, 'train')
    return write_coco(root, 'val')


def test_the_example_detection_study_runs_and_reports(coco, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'digits.yaml').write_text(EXAMPLE)
    assert main(['study', 'digits.yaml', '--data-dir', str(coco), '--device', 'cpu', '--threads', '1',
                 '--no-progress']) == 0
    for variant in ('resnet18', 'ba_resnet18'):
        result = json.loads((tmp_path / 'results' / 'digits' / f'{variant}-seed0.json').read_text())
        rows = (tmp_path / 'runs' / 'study' / 'digits' / f'{variant}-seed0' / 'metrics.csv').read_text().splitlines()
        header, last = rows[0].split(','), rows[-1].split(',')
        assert result['task'] == 'detect' and result['variant'] == variant and result['epochs'] == 1
        assert result['test_bbox_AP'] == pytest.approx(float(last[header.index('bbox_AP')]))
        assert result['test_bbox_AP50'] == pytest.approx(float(last[header.index('bbox_AP50')]))
        assert 'backbone' not in result['recipe'] and result['recipe']['arch'] == 'fcos'
        config = json.loads((tmp_path / 'runs' / 'study' / 'digits' / f'{variant}-seed0' / 'last' /
                             'config.json').read_text())
        assert config['task'] == 'detection' and config['detector']['backbone'] == variant
    text = (tmp_path / 'results' / 'digits.md').read_text()
    assert '## Test box AP' in text and '| variant | seeds | box AP mean ± std | SE | per seed | AP50 mean |' in text
    assert '| `resnet18` | 1/1 |' in text and '| `ba_resnet18` | 1/1 |' in text
    assert '| `resnet18` | `ba_resnet18` |' in text  # the pairwise table
    assert 'Task `detect`, the variants set `backbone`' in text
    capsys.readouterr()
    assert main(['study', 'digits.yaml', '--data-dir', str(coco), '--device', 'cpu']) == 0  # nothing trains again
    assert '2 done, 0 to resume, 0 to train' in capsys.readouterr().out


def test_segmentation_study_config_and_clear_errors(tmp_path):
    path = tmp_path / 's.yaml'
    path.write_text(yaml.safe_dump({'task': 'segment', 'variants': ['resnet18', 'ba_resnet18'], 'seeds': [0],
                                    'recipe': {'arch': 'fcn', 'base_size': 64, 'crop_size': 48, 'epochs': 1}}))
    study = load_study(str(path))
    assert study.task.name == 'segment' and study.task.variant_key == 'backbone'
    assert study_recipe(study)['arch'] == 'fcn' and 'backbone' not in study_recipe(study)
    path.write_text(yaml.safe_dump({'task': 'segment', 'variants': ['resnet18'], 'recipe': {'backbone': 'x'}}))
    with pytest.raises(BanetError, match=r"recipe must not set \['backbone'\]"):
        load_study(str(path))
    path.write_text(yaml.safe_dump({'task': 'keypoints', 'variants': ['resnet18']}))
    with pytest.raises(BanetError, match='task must be one of classify, detect, segment'):
        load_study(str(path))
    path.write_text(yaml.safe_dump({'task': 'detect', 'variants': ['resnet18'], 'recipe': {'min_size': 'big'}}))
    with pytest.raises(BanetError, match='min-size'):
        load_study(str(path))
