"""banet predict: preprocessing from the saved config, batched top-k with class names, skipped files, errors."""
import json

import pytest
import torch

import banet
from banet.cli import main
from banet.deploy.predict import predict_files, predict_tensor

from _deploy import DATA_CONFIG, LABELS, manual_input, save_tiny, write_images


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp('predict') / 'saved')


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / 'imgs'
    write_images(images)
    (images / 'notes.txt').write_text('not an image')
    (images / 'cut.png').write_bytes((images / 'img0.png').read_bytes()[:30])  # truncated PNG
    (images / '.hidden.png').write_bytes(b'')  # hidden files are not collected
    (images / 'sub').mkdir()
    write_images(images / 'sub', n=1)
    return images


def test_predict_folder_json_matches_a_manual_forward(saved, folder, capsys):
    assert main(['predict', '--model', str(saved), str(folder), '--format', 'json', '--top-k', '3',
                 '-b', '2']) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    files = [r['file'].split('imgs/')[-1] for r in report['results']]
    assert files == ['img0.png', 'img1.png', 'img2.png', 'img3_rgb.png', 'sub/img0.png', 'sub/img1_rgb.png']
    assert sorted(p.split('imgs/')[-1] for p in report['skipped']) == ['cut.png', 'notes.txt']
    assert 'skipped' in captured.err and 'notes.txt' in captured.err

    # independent check: the same numbers from PIL + numpy preprocessing (16 px images, crop_pct 1: no resize)
    model = banet.load_pretrained(saved)
    mean, std = DATA_CONFIG['mean'][0], DATA_CONFIG['std'][0]
    x = torch.cat([manual_input(folder / f, mean, std) for f in files])  # RGB files: luminance, as PIL's 'L'
    with torch.no_grad():
        probs = model(x).softmax(1)
    for r, p in zip(report['results'], probs):
        top = p.topk(3)
        assert [c['class'] for c in r['top_k']] == top.indices.tolist()
        assert [c['label'] for c in r['top_k']] == [LABELS[i] for i in top.indices.tolist()]
        assert [c['prob'] for c in r['top_k']] == pytest.approx(top.values.tolist(), abs=1e-5)


def test_predict_table_resizes_to_the_model_input(saved, tmp_path, capsys):
    images = write_images(tmp_path / 'big', n=1, size=40)  # resized to 16 px by the model's transform
    assert main(['predict', '--model', str(saved), *map(str, images), '--top-k', '2']) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ['file', 'top-1', 'top-2'] and len(lines) == 3
    assert all(line.split()[1] in LABELS and line.endswith('%') for line in lines[1:])


def test_batching_does_not_change_results(saved, folder):
    model = banet.load_pretrained(saved)
    one = predict_files(model, [folder], top_k=4, batch_size=1)
    many = predict_files(model, [folder], top_k=4, batch_size=64)
    assert len(one.results) == 6 and one.skipped.keys() == many.skipped.keys()
    for a, b in zip(one.results, many.results):
        assert a['file'] == b['file']
        assert [c['prob'] for c in a['top_k']] == pytest.approx([c['prob'] for c in b['top_k']], abs=1e-5)
        assert sum(c['prob'] for c in a['top_k']) == pytest.approx(1, abs=1e-5)  # top-4 of 4 classes


def test_nothing_readable_and_wrong_channels(saved, tmp_path, capsys):
    (tmp_path / 'a.txt').write_text('text')
    assert main(['predict', '--model', str(saved), str(tmp_path / 'a.txt'), str(tmp_path / 'missing.png')]) == 2
    err = capsys.readouterr().err
    assert 'skipped' in err and 'missing.png' in err and 'no readable image among 2 file(s)' in err
    model = banet.load_pretrained(saved)
    with pytest.raises(ValueError, match=r'expects \(batch, 1, height, width\) input, got 3 channels'):
        predict_tensor(model, torch.randn(2, 3, 16, 16))


def test_a_registered_name_runs_with_random_weights(tmp_path, capsys):
    images = write_images(tmp_path / 'imgs', n=1, size=32)
    assert main(['predict', '--model', 'ba_resnet20_cifar', str(images[0]), '--format', 'json', '--top-k', '1']) == 0
    captured = capsys.readouterr()
    assert 'random weights' in captured.err
    assert json.loads(captured.out)['results'][0]['top_k'][0]['label'].isdigit()  # no names: class indices
    assert main(['predict', '--model', 'ba_resnet20_cifr', str(images[0])]) == 2
    assert "unknown model 'ba_resnet20_cifr'" in capsys.readouterr().err
