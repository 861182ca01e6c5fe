"""Bad COCO-layout inputs, as a new user makes them: each is one DataError line naming the file and the problem,
for both dense tasks; what COCO allows (degenerate boxes, boxes past the edge, images without annotations) keeps
its defined behaviour."""
import json

import pytest
import torch

pytest.importorskip('pycocotools')

from _coco_data import SIZE, write_coco  # noqa: E402
from banet.cli import main  # noqa: E402
from banet.dense import DataError  # noqa: E402
from banet.detection import CocoDetectionDataset  # noqa: E402
from banet.segmentation import CocoSegmentationDataset  # noqa: E402

DATASETS = [CocoDetectionDataset, CocoSegmentationDataset]


def _edit(root, split, edit):
    """Rewrite root's annotations file of ``split`` with ``edit(dict)``; returns the file."""
    file = root / 'annotations' / f'instances_{split}.json'
    data = json.loads(file.read_text())
    edit(data)
    file.write_text(json.dumps(data))
    return file


def _one_line(err, *words):
    message = str(err.value)
    assert '\n' not in message and 'Traceback' not in message, message
    assert all(w in message for w in words), message


@pytest.mark.parametrize('dataset', DATASETS)
def test_invalid_json_is_one_line_naming_the_file(tmp_path, dataset):
    root = write_coco(tmp_path, 'val')
    file = root / 'annotations' / 'instances_val.json'
    file.write_text(file.read_text()[:-10])  # cut short, as by a failed download
    with pytest.raises(DataError) as err:
        dataset(root, 'val')
    _one_line(err, str(file), 'not valid JSON', 'line 1')


def test_json_that_is_not_an_object_is_one_line(tmp_path):
    root = write_coco(tmp_path, 'val')
    file = root / 'annotations' / 'instances_val.json'
    file.write_text('[1, 2, 3]')
    with pytest.raises(DataError) as err:
        CocoDetectionDataset(root, 'val')
    _one_line(err, str(file), 'not a COCO annotations file')


@pytest.mark.parametrize('dataset', DATASETS)
def test_unknown_category_id_is_one_line(tmp_path, dataset):
    root = write_coco(tmp_path, 'val')
    file = _edit(root, 'val', lambda d: d['annotations'][1].update(category_id=999))
    with pytest.raises(DataError) as err:
        dataset(root, 'val')
    _one_line(err, str(file), 'annotation 2', 'category_id 999', '[1, 2]')


def test_annotation_of_an_unlisted_image_is_one_line(tmp_path):
    root = write_coco(tmp_path, 'val')
    file = _edit(root, 'val', lambda d: d['annotations'][0].update(image_id=77))
    with pytest.raises(DataError) as err:
        CocoDetectionDataset(root, 'val')
    _one_line(err, str(file), 'annotation 1', 'image_id 77')


@pytest.mark.parametrize('dataset', DATASETS)
def test_image_listed_but_missing_is_one_line(tmp_path, dataset):
    root = write_coco(tmp_path, 'val')
    (root / 'val' / '2.png').unlink()
    with pytest.raises(DataError) as err:
        dataset(root, 'val')  # found when the split is opened, not hours into training
    _one_line(err, str(root / 'val' / '2.png'), 'instances_val.json', '1 of the 4')


def test_missing_image_folder_is_one_line(tmp_path):
    root = write_coco(tmp_path, 'val')
    (root / 'val').rename(root / 'elsewhere')
    with pytest.raises(DataError) as err:
        CocoSegmentationDataset(root, 'val')
    _one_line(err, str(root / 'val' / '1.png'), '4 of the 4')


@pytest.mark.parametrize('dataset', DATASETS)
def test_missing_annotations_file_is_one_line(tmp_path, dataset):
    with pytest.raises(DataError) as err:
        dataset(tmp_path, 'val')
    _one_line(err, str(tmp_path / 'annotations' / 'instances_val.json'), 'not found')


def test_corrupt_image_is_one_line_for_segmentation_too(tmp_path):
    root = write_coco(tmp_path, 'val', corrupt=True)
    ds = CocoSegmentationDataset(root, 'val')
    with pytest.raises(DataError) as err:
        ds[4]
    _one_line(err, 'cannot read image', str(root / 'val' / '5.png'))


@pytest.mark.parametrize('command', ['detect', 'segment'])
def test_the_commands_print_the_one_line(tmp_path, capsys, command):
    root = write_coco(tmp_path, 'train')
    _edit(root, 'train', lambda d: d['annotations'][0].update(category_id=999))
    assert main([command, 'train', '--data-dir', str(root), '--output', str(tmp_path / 'runs'), '--no-progress',
                 '--device', 'cpu']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'instances_train.json: annotation 1 has category_id 999' in err[0], err


# --- what COCO allows keeps its defined behaviour ---------------------------------------------------------------

def test_degenerate_boxes_are_dropped(tmp_path):
    root = write_coco(tmp_path, 'val')
    _edit(root, 'val', lambda d: d['annotations'][0].update(bbox=[8, 8, 20, 0.5]))  # image 1, 0.5 px high
    _, target = CocoDetectionDataset(root, 'val')[0]
    assert target['boxes'].tolist() == [[36.0, 30.0, 58.0, 50.0]] and target['labels'].tolist() == [2]


def test_boxes_past_the_edge_are_clipped_and_boxes_outside_dropped(tmp_path):
    root = write_coco(tmp_path, 'val')

    def edit(d):
        d['annotations'][0].update(bbox=[50, -6, 30, 20])         # past the right and top edges
        d['annotations'][1].update(bbox=[SIZE + 4, 10, 10, 10])   # wholly outside the image
    _edit(root, 'val', edit)
    _, target = CocoDetectionDataset(root, 'val')[0]
    assert target['boxes'].tolist() == [[50.0, 0.0, float(SIZE), 14.0]] and target['labels'].tolist() == [1]
    _, flipped = CocoDetectionDataset(root, 'val', lambda i, t: (i.flip(-1), t))[0]
    assert flipped['boxes'].shape == (1, 4)  # clipping follows the user's transforms too


@pytest.mark.parametrize('dataset', DATASETS)
def test_images_without_annotations_give_empty_targets(tmp_path, dataset):
    root = write_coco(tmp_path, 'val')
    _, target = dataset(root, 'val')[2]  # image 3 has no annotation
    if dataset is CocoDetectionDataset:
        assert target['boxes'].shape == (0, 4) and target['labels'].shape == (0,)
    else:
        assert target.shape == (SIZE, SIZE) and torch.equal(target, torch.zeros(SIZE, SIZE, dtype=torch.int64))
