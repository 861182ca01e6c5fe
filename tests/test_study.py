"""`banet study` on generated Fashion-MNIST files: result files, skipping, resuming, the report, clear errors."""
import csv
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

import banet.train as banet_train  # the study's classification task calls banet_train.train
from banet.study import run as study_mod
from banet.cli import main
from banet.study.run import load_study, recipe_of, study_recipe
from banet.study.report import BEGIN, END, write_report
from banet.runs import loop as trainer  # the loop that calls train_one_epoch

from _train_data import Crash, crash_in_epoch, make_fashion_mnist, train_config

RECIPE = {'dataset': 'fashion_mnist', 'batch_size': 16, 'epochs': 2, 'lr': 0.05, 'warmup_epochs': 0,
          'threads': 1, 'progress': False}


@pytest.fixture(scope='module')
def fmnist(tmp_path_factory) -> Path:
    return make_fashion_mnist(tmp_path_factory.mktemp('fmnist'), n_train=32, n_test=16)


def _config(tmp_path: Path, **over) -> Path:
    cfg = {'name': 'tiny', 'variants': ['resnet20_cifar', 'cbamresnet20_cifar'], 'seeds': [0, 1],
           'output': str(tmp_path / 'runs'), 'results': str(tmp_path / 'results'),
           'report': str(tmp_path / 'report' / 'tiny.md'), 'recipe': dict(RECIPE), **over}
    path = tmp_path / 'study.yaml'
    path.write_text(yaml.safe_dump(cfg))
    return path


def _count_trainings(monkeypatch) -> list:
    calls = []
    real = banet_train.train  # what the study's classification task calls

    def counting(args):
        calls.append((args.model, args.seed))
        return real(args)
    monkeypatch.setattr(banet_train, 'train', counting)
    return calls


def _conv_macs(size: int, in_chans: int, classes: int) -> int:
    """Multiply-accumulates of a CIFAR ResNet-20 (3x3 convs, projection shortcuts, fc), counted by hand."""
    macs = size * size * 16 * in_chans * 9  # stem
    for width, prev, stride in ((16, 16, 1), (32, 16, 2), (64, 32, 2)):
        size //= stride
        out = size * size * width
        macs += out * prev * 9 + out * width * 9 + 4 * out * width * 9  # first block, then 2 more blocks
        if stride > 1 or prev != width:
            macs += out * prev  # 1x1 projection shortcut
    return macs + 64 * classes


def test_study_trains_skips_and_reports(fmnist, tmp_path, monkeypatch, capsys):
    cfg = _config(tmp_path)
    calls = _count_trainings(monkeypatch)
    # a subset first (as on one of several machines), without the report
    assert main(['study', str(cfg), '--data-dir', str(fmnist), '--seeds', '0', '--no-report']) == 0
    assert calls == [('resnet20_cifar', 0), ('cbamresnet20_cifar', 0)]
    assert not (tmp_path / 'report').exists()
    # the whole study trains only what is missing, then writes the report
    assert main(['study', str(cfg), '--data-dir', str(fmnist)]) == 0
    assert calls[2:] == [('resnet20_cifar', 1), ('cbamresnet20_cifar', 1)]
    results = {}
    for variant in ('resnet20_cifar', 'cbamresnet20_cifar'):
        for seed in (0, 1):
            r = json.loads((tmp_path / 'results' / f'{variant}-seed{seed}.json').read_text())
            with open(tmp_path / 'runs' / f'{variant}-seed{seed}' / 'metrics.csv') as f:
                rows = list(csv.DictReader(f))
            assert (r['variant'], r['seed'], r['epochs'], r['curve']['epoch']) == (variant, seed, 2, [1, 2])
            assert r['test_top1'] == pytest.approx(float(rows[-1]['val_top1']))
            assert r['curve']['val_top1'] == pytest.approx([float(row['val_top1']) for row in rows])
            assert r['test_top1_best'] == max(r['curve']['val_top1'])
            assert r['train_img_s'] > 0 and r['wall_time_s'] > 0 and r['resumed_from_epoch'] == 0
            assert r['device'] == 'cpu' and r['machine']['torch_threads'] == '1'
            assert (r['img_size'], r['in_chans'], r['num_classes']) == (28, 1, 10)
            assert r['recipe']['lr'] == 0.05 and 'device' not in r['recipe'] and 'seed' not in r['recipe']
            results[variant, seed] = r
    # 1-channel stem: 2 x 16 x 9 weights fewer than the 3-channel counts (272,474; CBAM: + 2,916, hand-derived)
    assert results['resnet20_cifar', 0]['params'] == 272_474 - 288
    assert results['cbamresnet20_cifar', 0]['params'] == 275_390 - 288
    assert results['resnet20_cifar', 0]['macs'] == _conv_macs(28, 1, 10)
    assert results['cbamresnet20_cifar', 1]['macs'] > results['resnet20_cifar', 1]['macs']

    report = tmp_path / 'report' / 'tiny.md'
    text = report.read_text()
    plain = [results['resnet20_cifar', s]['test_top1'] for s in (0, 1)]
    mean, std = sum(plain) / 2, abs(plain[0] - plain[1]) / math.sqrt(2)
    assert f'| `resnet20_cifar` | 2/2 | {mean:.2f} ± {std:.2f} | {std / math.sqrt(2):.2f} |' in text
    assert '| `resnet20_cifar` | `cbamresnet20_cifar` |' in text and 'incomplete' not in text
    assert '(tiny_curves.png)' in text and '(tiny_bars.png)' in text and BEGIN in text and END in text
    for name in ('tiny_curves.png', 'tiny_bars.png'):
        data = (tmp_path / 'report' / name).read_bytes()
        assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) < 300_000

    # a third time: nothing trains, no result file is rewritten
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / 'results').iterdir()}
    monkeypatch.setattr(banet_train, 'train', lambda args: pytest.fail('a finished run was trained again'))
    capsys.readouterr()
    assert main(['study', str(cfg), '--data-dir', str(fmnist)]) == 0
    assert '4 done, 0 to resume, 0 to train' in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / 'results').iterdir()}


def test_interrupted_runs_resume_or_restart(fmnist, tmp_path, monkeypatch, capsys):
    cfg = _config(tmp_path, variants=['ba_resnet20_cifar'], seeds=[3, 4])
    real = crash_in_epoch(monkeypatch, 2)
    for seed in ('3', '4'):
        with pytest.raises(Crash):
            main(['study', str(cfg), '--data-dir', str(fmnist), '--seeds', seed])
    monkeypatch.setattr(trainer, 'train_one_epoch', real)
    assert not (tmp_path / 'results').exists()
    # seed 4's checkpoint is unusable (as if interrupted while saving: weights and state of different epochs)
    state_file = tmp_path / 'runs' / 'ba_resnet20_cifar-seed4' / 'last' / 'train_state.pt'
    state = torch.load(state_file, weights_only=True)
    torch.save({**state, 'epoch': 5}, state_file)

    # the checkpoints belong to this recipe only: another lr is refused before any work
    other = _config(tmp_path, variants=['ba_resnet20_cifar'], seeds=[3, 4], recipe={**RECIPE, 'lr': 0.2})
    assert main(['study', str(other), '--data-dir', str(fmnist)]) == 2
    err = capsys.readouterr().err
    assert 'holds a checkpoint of another recipe (lr: 0.05 there, 0.2 in the config)' in err

    cfg = _config(tmp_path, variants=['ba_resnet20_cifar'], seeds=[3, 4])
    assert main(['study', str(cfg), '--data-dir', str(fmnist), '--no-report']) == 0
    out = capsys.readouterr().out
    assert '0 done, 1 to resume, 1 to train' in out and 'it restarts from epoch 0' in out
    for seed, resumed_from in ((3, 1), (4, 0)):
        r = json.loads((tmp_path / 'results' / f'ba_resnet20_cifar-seed{seed}.json').read_text())
        assert r['resumed_from_epoch'] == resumed_from and r['curve']['epoch'] == [1, 2]


def _fake_result(study, variant, seed, top1, **over):
    return {'variant': variant, 'seed': seed, 'test_top1': top1, 'test_top1_best': top1 + 0.5, 'epochs': 2,
            'curve': {'epoch': [1, 2], 'val_top1': [top1 - 5, top1]}, 'params': 1000, 'macs': 2e6,
            'img_size': 28, 'in_chans': 1, 'num_classes': 10, 'train_img_s': 100.0, 'wall_time_s': 60.0,
            'resumed_from_epoch': 0, 'device': 'cpu', 'machine': {'cpu': 'test CPU', 'torch_threads': '2'},
            'finished': '2025-01-01 00:00:00', 'recipe': study_recipe(study), **over}


def test_report_statistics_claim_and_hand_written_text(tmp_path, capsys):
    cfg = _config(tmp_path, variants=['resnet20_cifar', 'seresnet20_cifar', 'ba_resnet20_cifar'], seeds=[0, 1, 2],
                  claim=[['ba_resnet20_cifar'], ['resnet20_cifar'], ['seresnet20_cifar']])
    study = load_study(str(cfg))
    accs = {'resnet20_cifar': [90.0, 91.0, 92.0], 'seresnet20_cifar': [88.0, 88.5, 89.0],
            'ba_resnet20_cifar': [91.5, 90.5]}  # BAv2: only 2 of 3 seeds finished
    study.results.mkdir()
    for variant, values in accs.items():
        for seed, top1 in enumerate(values):
            (study.results / f'{variant}-seed{seed}.json').write_text(
                json.dumps(_fake_result(study, variant, seed, top1)))
    assert main(['study', str(cfg), '--report']) == 0
    text = study.report.read_text()
    # plain: mean 91, std 1, SE 1/√3; SE: mean 88.5, std 0.5, SE 0.5/√3; BAv2: mean 91, std √0.5, SE 0.5
    assert '| `resnet20_cifar` | 3/3 | 91.00 ± 1.00 | 0.58 | 90.00 (s0), 91.00 (s1), 92.00 (s2) |' in text
    assert '| `seresnet20_cifar` | 3/3 | 88.50 ± 0.50 | 0.29 |' in text
    assert '| `ba_resnet20_cifar` | 2/3 **incomplete** | 91.00 ± 0.71 | 0.50 |' in text
    # differences: 2.50 ± √(1/3 + 1/12) = 0.65 (> 2 SE); 0.00 ± √(1/3 + 1/4) = 0.76 (not)
    assert '| `resnet20_cifar` | `seresnet20_cifar` | +2.50 | 0.65 | **yes** |' in text
    assert '| `resnet20_cifar` | `ba_resnet20_cifar` | +0.00 | 0.76 | no |' in text
    assert '| `ba_resnet20_cifar` > `resnet20_cifar` | +0.00 | 0.76 | tie, within noise | – |' in text
    # 2.50 ± √(1/4 + 1/12) = 0.58
    assert '| `ba_resnet20_cifar` > `seresnet20_cifar` | +2.50 | 0.58 | reproduced (> 2 SE) | – |' in text
    assert 'seeds missing for `ba_resnet20_cifar` (2/3)' in text
    assert '- 2 of 3 pairs differ by more than 2 SE' in text
    assert 'M1: test CPU, 2 torch threads' in text

    # the hand-written section survives regeneration; everything else is rewritten
    head, rest = text.split(BEGIN)
    study.report.write_text(head + BEGIN + '\nBAv2 ties the baseline here.\n' + END + rest.split(END)[1])
    (study.results / 'ba_resnet20_cifar-seed2.json').write_text(
        json.dumps(_fake_result(study, 'ba_resnet20_cifar', 2, 91.0)))
    write_report(study)
    text = study.report.read_text()
    assert 'BAv2 ties the baseline here.' in text and '| `ba_resnet20_cifar` | 3/3 | 91.00 ± 0.50 |' in text

    # a result of another recipe is refused, naming the difference
    (study.results / 'ba_resnet20_cifar-seed2.json').write_text(json.dumps(_fake_result(
        study, 'ba_resnet20_cifar', 2, 91.0, recipe={**study_recipe(study), 'epochs': 9})))
    assert main(['study', str(cfg), '--report']) == 2
    assert 'another recipe (epochs: 9 there, 2 in the config)' in capsys.readouterr().err


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('name', ['fashion_mnist', 'fashion_mnist_56'])
def test_shipped_study_configs(name):
    """Six variants, three seeds; the recipe is the demo recipe's apart from precision and the schedule (the demo is
    a 2-epoch schedule without augmentation), and fits committed results."""
    study = load_study(str(REPO / 'configs' / 'study' / f'{name}.yaml'))
    depth = '56' if name.endswith('56') else '20'
    assert study.variants == [f'{p}resnet{depth}_cifar' for p in ('', 'se', 'eca', 'cbam', 'bav1_', 'ba_')]
    assert study.seeds == [0, 1, 2] and study.report == Path('docs/results') / f'{name}.md'
    assert [len(group) for group in study.claim] == [1, 1, 3, 1]
    demo = recipe_of(train_config('-c', str(REPO / 'configs/fashion_mnist/ba_resnet20_cifar.yaml')))
    recipe = study_recipe(study)
    assert {k for k in recipe if recipe[k] != demo[k]} <= {'amp', 'amp_dtype', 'epochs', 'warmup_epochs', 'lr',
                                                            'pad_crop', 'hflip', 'smoothing', 'batch_size', 'warmup_lr'}
    results = sorted((REPO / study.results).glob('*.json')) if study.results.parts[0] == 'docs' else []
    for file in results:  # the committed results were trained with exactly this recipe
        variant, seed = file.stem.rsplit('-seed', 1)
        study_mod.read_result(file, recipe, variant, int(seed))


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('banet study: error:') and '\n' not in err
    return err


@pytest.mark.parametrize('change, message', [
    ({'variants': ['resnet20_cifar', 'no_such_net']}, "unknown variant(s) ['no_such_net']"),
    ({'recipe': {**RECIPE, 'learning_rate': 0.1}}, "recipe: unknown key(s) ['learning_rate']"),
    ({'seeds': []}, 'seeds must be a non-empty list'),
    ({'seeds': [0, 0]}, 'seeds must be distinct integers'),
    ({'recipe': {**RECIPE, 'model': 'resnet20_cifar'}}, "recipe must not set ['model']"),
    ({'recipe': {**RECIPE, 'epochs': 'many'}}, "argument --epochs: invalid int value: 'many'"),
    ({'recipe': {**RECIPE, 'batch_size': 0}}, '--batch-size must be at least 1'),
    ({'epochs': 3}, "unknown key(s) ['epochs']"),
    ({'claim': [['resnet50']]}, "claim names ['resnet50']"),
])
def test_bad_config_is_one_clear_error_before_any_training(fmnist, tmp_path, monkeypatch, capsys, change, message):
    monkeypatch.setattr(banet_train, 'train', lambda args: pytest.fail('trained despite a bad config'))
    err = _error(capsys, ['study', str(_config(tmp_path, **change)), '--data-dir', str(fmnist)])
    assert message in err
    assert not (tmp_path / 'runs').exists() and not (tmp_path / 'results').exists()


def test_subset_outside_the_config_is_refused(fmnist, tmp_path, capsys):
    cfg = str(_config(tmp_path))
    assert 'not in the variants of' in _error(capsys, ['study', cfg, '--variants', 'seresnet20_cifar'])
    assert 'not in the seeds of' in _error(capsys, ['study', cfg, '--seeds', '7'])
    assert 'does not exist' in _error(capsys, ['study', str(tmp_path / 'missing.yaml')])
