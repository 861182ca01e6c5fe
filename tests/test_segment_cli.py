"""`banet segment train|validate|predict` end to end on a tiny COCO-layout set: run folder, exact resume, mIoU, PNGs."""
import json

import pytest
import torch

pytest.importorskip('pycocotools')

import banet  # noqa: E402
from banet.cli import main  # noqa: E402
from banet.io import load_state_dict_file  # noqa: E402
from banet.segmentation import (CocoSegmentationDataset, SegmentationLoss, SegmentTrainConfig,  # noqa: E402
                                create_segmenter, eval_transforms, load_segmenter, train_segmenter)
from banet.runs import loop as seg_trainer  # noqa: E402  (fit's loop calls train_one_epoch)

from _coco_data import SIZE, write_coco  # noqa: E402
from _train_data import Crash  # noqa: E402


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco')
    write_coco(root, 'train')
    return write_coco(root, 'val')


def _args(coco, out, name, *extra):
    return ['segment', 'train', '--arch', 'fcn', '--backbone', 'resnet18', '--data-dir', str(coco), '-b', '2',
            '--epochs', '2', '--base-size', str(SIZE), '--crop-size', '48', '--output-stride', '16',
            '--threads', '1', '--no-progress', '--output', str(out), '--experiment', name, *extra]


def test_train_resume_validate_predict(coco, tmp_path, monkeypatch, capsys):
    assert main(_args(coco, tmp_path, 'straight')) == 0
    run = tmp_path / 'straight'
    for name in ('config.yaml', 'metrics.csv', 'summary.png', 'last/model.safetensors', 'last/train_state.pt',
                 'last/config.json', 'best/model.safetensors', 'best/config.json'):
        assert (run / name).is_file(), name
    rows = (run / 'metrics.csv').read_text().strip().splitlines()
    assert rows[0] == 'epoch,train_loss,train_img_s,lr,miou,pixel_acc' and len(rows) == 3
    config = json.loads((run / 'last' / 'config.json').read_text())
    assert config['task'] == 'segmentation' and config['categories'] == {'1': 'red', '2': 'blue'}
    assert config['segmenter']['num_classes'] == 3 and config['input']['base_size'] == SIZE

    real = seg_trainer.train_one_epoch
    calls = {'n': 0}

    def crashing(*args, **kwargs):
        calls['n'] += 1
        if calls['n'] == 2:
            raise Crash()
        return real(*args, **kwargs)
    monkeypatch.setattr(seg_trainer, 'train_one_epoch', crashing)
    with pytest.raises(Crash):
        main(_args(coco, tmp_path, 'resumed'))
    monkeypatch.setattr(seg_trainer, 'train_one_epoch', real)
    assert main(['segment', 'train', '--resume', str(tmp_path / 'resumed'), '--threads', '1', '--no-progress']) == 0
    a = load_state_dict_file(run / 'last' / 'model.safetensors')
    b = load_state_dict_file(tmp_path / 'resumed' / 'last' / 'model.safetensors')
    assert all(torch.equal(a[k], b[k]) for k in a), 'resume is not exact'
    assert (tmp_path / 'resumed' / 'metrics.csv').read_text().count('\n') == 3

    results = tmp_path / 'r.json'
    assert main(['segment', 'validate', '--checkpoint', str(run), '--data-dir', str(coco), '--results-file',
                 str(results), '--threads', '1', '--no-progress']) == 0
    metrics = json.loads(results.read_text())
    assert 0 <= metrics['miou'] <= 1 and 0 <= metrics['pixel_acc'] <= 1 and metrics['images'] == 4
    assert set(metrics['iou']) == {'background', 'red', 'blue'}
    best_row = max(rows[1:], key=lambda r: float(r.split(',')[4]))
    assert metrics['miou'] == pytest.approx(float(best_row.split(',')[4]))  # best/ is the best epoch's

    capsys.readouterr()
    assert main(['segment', 'predict', '--checkpoint', str(run), str(coco / 'val'), '--output-dir',
                 str(tmp_path / 'out')]) == 0
    assert len(list((tmp_path / 'out').glob('*.png'))) == 4 and '1.png' in capsys.readouterr().out
    assert load_segmenter(run).categories == {1: 'red', 2: 'blue'}


def test_backbone_from_a_classification_checkpoint_and_clear_errors(coco, tmp_path, capsys):
    import timm
    classifier = timm.create_model('resnet18', num_classes=7)
    banet.save_pretrained(classifier, tmp_path / 'cls')
    assert main(_args(coco, tmp_path, 'init', '--epochs', '1', '--backbone-checkpoint', str(tmp_path / 'cls'),
                      '--trainable-layers', '0')) == 0
    assert 'backbone initialised from' in capsys.readouterr().out
    got = load_segmenter(tmp_path / 'init').backbone.features.body.state_dict()
    assert torch.equal(got['conv1.weight'], classifier.state_dict()['conv1.weight'])  # frozen: the initial weights

    def one_line_error(argv, *words):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and all(w in err[0] for w in words), err
    one_line_error(['segment', 'train', '--data-dir', str(tmp_path / 'nothing'), '--output', str(tmp_path),
                    '--no-progress'], 'annotations', 'instances_train.json')
    one_line_error(_args(coco, tmp_path, 'noval', '--val-split', 'test'), 'instances_test.json')
    one_line_error(_args(coco, tmp_path, 'b1', '-b', '1'), '--batch-size 2')
    one_line_error(['segment', 'validate', '--checkpoint', str(tmp_path / 'cls'), '--data-dir', str(coco)],
                   'not a segmentation checkpoint')


def test_loss_falls_on_a_fixed_batch(coco):
    torch.set_num_threads(1)
    data = CocoSegmentationDataset(coco, 'train', eval_transforms(SIZE // 2))
    images, masks = (torch.stack(t) for t in zip(data[0], data[1]))
    model = create_segmenter('deeplabv3', 'ba_resnet18', num_classes=3, aux=True, output_stride=16).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion, losses = SegmentationLoss(), []
    for _ in range(6):
        loss = criterion(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_frozen_norms_stay_frozen(coco, tmp_path):
    import timm
    classifier = timm.create_model('ba_resnet18')
    for name, buffer in classifier.named_buffers():
        if 'running' in name:  # statistics a training step would move if the norms were not frozen
            buffer.copy_(torch.rand_like(buffer) + 0.5)
    banet.save_pretrained(classifier, tmp_path / 'cls')
    train_segmenter(SegmentTrainConfig(
        arch='fcn', backbone='ba_resnet18', backbone_checkpoint=str(tmp_path / 'cls'), norm='frozen',
        data_dir=str(coco), batch_size=2, epochs=1, base_size=SIZE, crop_size=48, output_stride=16, threads=1,
        progress=False, output=str(tmp_path), experiment='frozen'))
    body = load_segmenter(tmp_path / 'frozen').backbone.features.body
    assert not [m for m in body.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    want, got = classifier.state_dict(), body.state_dict()
    norms = [k for k in got if 'running' in k]
    assert any('.ba.' in k for k in norms) and all(torch.equal(got[k], want[k]) for k in norms)  # bridges too
    assert not torch.equal(got['layer4.1.conv2.weight'], want['layer4.1.conv2.weight'])  # while the convs trained
