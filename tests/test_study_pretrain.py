"""The pretrain-then-fine-tune flow of `banet study`, one init rule for every backbone, the ECA ResNet-18 peer."""
import json
import shutil
from pathlib import Path

import pytest
import timm
import torch
import yaml

pytest.importorskip('pycocotools')

import banet  # noqa: E402,F401  (registers the models)
from banet.cli import main  # noqa: E402
from banet.dense import TimmFeatures  # noqa: E402
from banet.errors import BanetError  # noqa: E402
from banet.study.report import BEGIN  # noqa: E402
from banet.study.run import load_study, read_result, study_recipe  # noqa: E402

from _coco_data import write_coco  # noqa: E402
from _train_data import make_fashion_mnist  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BACKBONES = ['resnet18', 'seresnet18', 'ecaresnet18', 'bav1_resnet18', 'ba_resnet18']


def test_grey_pretrained_weights_initialise_an_rgb_backbone_with_the_same_response():
    torch.manual_seed(0)
    grey = timm.create_model('ba_resnet18', in_chans=1, num_classes=10).eval()
    rgb = TimmFeatures('ba_resnet18', (1, 2, 3, 4), weights=grey.state_dict(), norm='bn').eval()
    assert rgb.weights_report.adapted_keys == ('conv1.weight',) and not rgb.weights_report.missing_keys
    reference = timm.create_model('ba_resnet18', in_chans=1, features_only=True, out_indices=(1, 2, 3, 4)).eval()
    reference.load_state_dict({k: v for k, v in grey.state_dict().items() if not k.startswith('fc.')})
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        for got, want in zip(rgb(x.expand(-1, 3, -1, -1)), reference(x)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # a first convolution that differs in more than its input channels is still refused
    state = dict(grey.state_dict(), **{'conv1.weight': torch.zeros(32, 1, 7, 7)})
    with pytest.raises(BanetError, match='shape mismatches'):
        TimmFeatures('ba_resnet18', (1, 2, 3, 4), weights=state)


def test_ecaresnet18_is_resnet18_with_eca_in_every_block():
    model = timm.create_model('ecaresnet18')
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
    assert len(blocks) == 8 and all(type(b.se).__name__ == 'EcaModule' for b in blocks)
    # ECA's kernel follows the channels (64: 3; 128, 256, 512: 5); one conv1d without bias per block
    extra = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in timm.create_model('resnet18').parameters())
    assert extra == 2 * 3 + 6 * 5
    assert timm.create_model('ecaresnet18', features_only=True).feature_info.channels() == [64, 64, 128, 256, 512]


@pytest.mark.parametrize('name', BACKBONES)
@pytest.mark.parametrize('zero', [True, False])
def test_one_init_rule_reaches_every_backbone(name, zero):
    model = timm.create_model(name, zero_init_last=zero)
    last_norms = [b.bn2.weight for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
    assert all(bool((w == 0).all()) == zero and bool((w == 1).all()) == (not zero) for w in last_norms)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    write_coco(root / 'coco', 'train')
    write_coco(root / 'coco', 'val')
    return make_fashion_mnist(root / 'fmnist', n_train=32, n_test=16), root / 'coco'


def _write(tmp_path: Path, epochs: int = 1) -> Path:
    (tmp_path / 'pre.yaml').write_text(yaml.safe_dump({
        'name': 'pre', 'variants': ['resnet18', 'ba_resnet18'], 'seeds': [0],
        'recipe': {'dataset': 'fashion_mnist', 'img_size': 32, 'model_kwargs': {'zero_init_last': False},
                   'batch_size': 8, 'epochs': epochs, 'lr': 0.05, 'threads': 1, 'progress': False}}))
    (tmp_path / 'det.yaml').write_text(yaml.safe_dump({
        'name': 'det', 'task': 'detect', 'pretrain': 'pre.yaml', 'variants': ['resnet18', 'ba_resnet18'],
        'seeds': [0], 'floor': {'test_bbox_AP50': 0.5},
        'recipe': {'arch': 'fcos', 'min_size': 64, 'max_size': 64, 'epochs': 1, 'batch_size': 2,
                   'model_kwargs': {'zero_init_last': False}, 'norm': 'bn', 'trainable_layers': 5}}))
    return tmp_path / 'det.yaml'


def test_a_detection_study_pretrains_each_backbone_once_then_fine_tunes(data, tmp_path, monkeypatch, capsys):
    fmnist, coco = data
    monkeypatch.chdir(tmp_path)
    _write(tmp_path)
    argv = ['study', 'det.yaml', '--data-dir', str(coco), '--pretrain-data-dir', str(fmnist), '--device', 'cpu',
            '--threads', '1', '--no-progress']
    assert main(argv) == 0
    det, pre = load_study('det.yaml'), load_study('pre.yaml')
    for variant in det.variants:
        pretrained = read_result(pre.result_file(variant, 0), study_recipe(pre), variant, 0)
        result = read_result(det.result_file(variant, 0), study_recipe(det), variant, 0, det.task)
        assert result['recipe']['pretrain'] == {'study': 'pre', 'seed': 0, 'recipe': study_recipe(pre)}
        assert 'backbone_checkpoint' not in result['recipe'] and pretrained['img_size'] == 32
        assert all(k in result for k in ('test_bbox_AP75', 'test_bbox_APs', 'test_bbox_APm'))
        run = yaml.safe_load((det.run_dir(variant, 0) / 'config.yaml').read_text())
        assert run['backbone_checkpoint'] == str(pre.run_dir(variant, 0) / 'last')
    out = capsys.readouterr().out
    assert out.count('backbone initialised from') == 2 and 'input channels converted: conv1.weight' in out
    report = (tmp_path / 'runs' / 'study' / 'det' / 'report.md').read_text()
    assert '## Pretraining' in report and '`zero_init_last: false` for every backbone' in report
    assert '## All final box AP metrics' in report and '| variant | seeds | bbox_AP | bbox_AP50 | bbox_AP75 |' in report
    assert '**Floor: ' in report and 'fell below bbox_AP50 ≥ 0.5' in report  # one epoch on four images
    assert (tmp_path / 'runs' / 'study' / 'pre' / 'report.md').is_file()
    # a second call trains nothing, pretraining included
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert 'study pre' not in out and '2 done, 0 to resume, 0 to train' in out
    # another pretraining recipe invalidates the fine-tuned results too
    _write(tmp_path, epochs=2)
    det = load_study('det.yaml')
    with pytest.raises(BanetError, match=r'another recipe \(pretrain: '):
        read_result(det.result_file('resnet18', 0), study_recipe(det), 'resnet18', 0, det.task)
    assert main(['study', 'det.yaml', '--report']) == 2
    assert 'was trained with another recipe (epochs: 1 there, 2 in the config)' in capsys.readouterr().err


@pytest.mark.parametrize('change, message', [
    ({'task': 'classify', 'recipe': {}}, 'only a detect or segment study'),
    ({'variants': ['resnet18', 'seresnet18']}, r"has no variant\(s\) \['seresnet18'\]"),
    ({'recipe': {'backbone_checkpoint': 'x'}}, r"must not set \['backbone_checkpoint'\]"),
    ({'floor': {'top1': 3}}, 'floor must map final metrics'),
])
def test_bad_pretraining_config_is_one_clear_error(tmp_path, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    cfg = yaml.safe_load(_write(tmp_path).read_text())
    cfg.update(change)
    (tmp_path / 'det.yaml').write_text(yaml.safe_dump(cfg))
    with pytest.raises(BanetError, match=message):
        load_study('det.yaml')


def test_the_shipped_scenes_studies_share_backbones_pretraining_and_init_rule(monkeypatch):
    monkeypatch.chdir(REPO)
    pre = load_study('configs/study/scenes_pretrain.yaml')
    assert pre.variants == BACKBONES and pre.recipe['model_kwargs'] == {'zero_init_last': False}
    for file in sorted(pre.results.glob('*.json')) if pre.results.is_dir() else []:  # the committed pretraining
        variant, seed = file.stem.rsplit('-seed', 1)
        assert read_result(file, study_recipe(pre), variant, int(seed))['img_size'] == 32
    for name, task, seeds in (('scenes_detect', 'detect', 5), ('scenes_segment', 'segment', 3)):
        study = load_study(f'configs/study/{name}.yaml')
        assert study.task.name == task and study.variants == BACKBONES and len(study.seeds) == seeds
        assert study.pretrain.path == pre.path and study.recipe['model_kwargs'] == {'zero_init_last': False}
        assert study_recipe(study)['pretrain']['recipe'] == study_recipe(pre)
        for file in sorted(study.results.glob('*.json')) if study.results.is_dir() else []:
            variant, seed = file.stem.rsplit('-seed', 1)
            read_result(file, study_recipe(study), variant, int(seed), study.task)
    assert load_study('configs/study/scenes_detect.yaml').floor == {'test_bbox_AP50': 0.5}
    assert load_study('configs/study/scenes_segment.yaml').floor == {'test_miou': 0.3}


@pytest.mark.parametrize('name', ['scenes_detect', 'scenes_segment'])
def test_the_committed_scenes_reports_rebuild_from_their_result_files(name, tmp_path, monkeypatch):
    """`banet study configs/study/NAME.yaml --report` on a copy of the repo's configs and results gives back the
    committed report, line for line except the date it was generated."""
    shutil.copytree(REPO / 'configs' / 'study', tmp_path / 'configs' / 'study')
    shutil.copytree(REPO / 'docs' / 'results', tmp_path / 'docs' / 'results')
    monkeypatch.chdir(tmp_path)
    committed = (tmp_path / 'docs' / 'results' / f'{name}.md').read_text().splitlines()
    # rebuilt from nothing but the hand-written section
    (tmp_path / 'docs' / 'results' / f'{name}.md').write_text('\n'.join(committed[committed.index(BEGIN):]))
    assert main(['study', f'configs/study/{name}.yaml', '--report']) == 0
    rebuilt = (tmp_path / 'docs' / 'results' / f'{name}.md').read_text().splitlines()
    assert len(rebuilt) == len(committed) and sum(line.startswith('| `') for line in rebuilt) > 20
    different = [(a, b) for a, b in zip(committed, rebuilt) if a != b]
    assert all(a.startswith('Generated by `banet study') and b.startswith('Generated by') for a, b in different)
    assert len(different) <= 1  # the date, when the minute has changed


def test_the_demo_detect_configs_are_the_studies_recipes_but_for_their_stated_changes(monkeypatch):
    """`make demo-detect` runs the backbone study's recipes with fewer epochs and, for the detector, float32."""
    monkeypatch.chdir(REPO)
    pre, det = load_study('configs/study/scenes_pretrain.yaml'), load_study('configs/study/scenes_detect.yaml')
    demo_pre = yaml.safe_load(Path('configs/fashion_mnist/scenes_pretrain_ba_resnet18.yaml').read_text())
    demo_det = yaml.safe_load(Path('configs/detection/scenes_fcos_ba_resnet18.yaml').read_text())
    assert demo_pre.pop('model') == 'ba_resnet18' and demo_det.pop('backbone') == 'ba_resnet18'
    assert (demo_pre.pop('epochs'), pre.recipe['epochs']) == (1, 2)
    assert (demo_det.pop('epochs'), det.recipe['epochs']) == (3, 4)
    assert (demo_det.pop('amp'), det.recipe['amp'], det.recipe['amp_dtype']) == (False, True, 'bfloat16')
    assert demo_pre.pop('seed') == 0 and demo_det.pop('seed') == 0
    assert (demo_det.pop('train_split'), demo_det.pop('val_split')) == ('train', 'val')
    assert demo_pre == {k: v for k, v in pre.recipe.items() if k not in ('epochs', 'progress')}
    assert demo_det == {k: v for k, v in det.recipe.items() if k not in ('epochs', 'amp', 'amp_dtype', 'progress')}
