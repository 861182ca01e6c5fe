"""Fashion-MNIST scenes: deterministic, COCO-valid, masks inside their boxes, occlusion handled, written once."""
import gzip
import json

import numpy as np
import pytest

pytest.importorskip('pycocotools')

from pycocotools import mask as mask_utils  # noqa: E402

from _train_data import make_fashion_mnist  # noqa: E402
from banet.detection import CATEGORIES, CocoDetectionDataset, DataError, make_scenes, read_idx  # noqa: E402
from banet.errors import BanetError  # noqa: E402

OPTIONS = dict(canvas=64, items=(2, 4), item_size=(16, 40), threshold=100)


@pytest.fixture(scope='module')
def fmnist(tmp_path_factory):
    return make_fashion_mnist(tmp_path_factory.mktemp('fmnist'), n_train=30, n_test=20)


@pytest.fixture(scope='module')
def scenes(fmnist, tmp_path_factory):
    return make_scenes(fmnist, tmp_path_factory.mktemp('s') / 'scenes', 12, 4, seed=1, **OPTIONS)


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def test_the_same_seed_gives_the_same_files(fmnist, scenes, tmp_path):
    assert _files(make_scenes(fmnist, tmp_path / 'again', 12, 4, seed=1, **OPTIONS)) == _files(scenes)
    other = _files(make_scenes(fmnist, tmp_path / 'other', 12, 4, seed=2, **OPTIONS))
    assert other.keys() == _files(scenes).keys() and other != _files(scenes)


def test_coco_layout_and_categories(scenes):
    assert sorted(p.name for p in scenes.iterdir()) == ['annotations', 'scenes.json', 'train', 'val']
    for split, n in (('train', 12), ('val', 4)):
        coco = json.loads((scenes / 'annotations' / f'instances_{split}.json').read_text())
        assert [c['name'] for c in coco['categories']] == list(CATEGORIES) and len(CATEGORIES) == 10
        assert [c['id'] for c in coco['categories']] == list(range(1, 11))
        assert len(coco['images']) == n == len(list((scenes / split).glob('*.png')))
        per_image = np.bincount([a['image_id'] for a in coco['annotations']], minlength=n + 1)[1:]
        assert per_image.min() >= 1 and per_image.max() <= 4


def test_masks_lie_inside_tight_boxes_and_occluded_pixels_belong_to_one_item(scenes):
    coco = json.loads((scenes / 'annotations' / 'instances_train.json').read_text())
    masks_of = {}
    for ann in coco['annotations']:
        mask = mask_utils.decode(ann['segmentation'])
        x, y, w, h = ann['bbox']
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)  # inside and tight
        assert ann['area'] == mask.sum() and ann['iscrowd'] == 0 and 1 <= ann['category_id'] <= 10
        masks_of.setdefault(ann['image_id'], []).append(mask.astype(int))
    occluded = 0
    for masks in masks_of.values():
        assert np.stack(masks).sum(0).max() <= 1  # a pixel belongs to at most one (the visible) item
        boxes = [(m.any(0).nonzero()[0], m.any(1).nonzero()[0]) for m in masks]
        occluded += any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert occluded  # some items do overlap (so the exclusion above was exercised)


def _overlap(a, b):
    (ax, ay), (bx, by) = a, b
    return ax[0] <= bx[-1] and bx[0] <= ax[-1] and ay[0] <= by[-1] and by[0] <= ay[-1]


def test_scenes_load_as_a_detection_set(scenes):
    ds = CocoDetectionDataset(scenes, 'val', masks=True)
    image, target = ds[0]
    assert image.shape == (3, 64, 64) and len(target['boxes']) == len(target['masks']) >= 1


def test_written_once(fmnist, scenes, tmp_path):
    before = _files(scenes)
    assert make_scenes(fmnist, scenes, 12, 4, seed=1, **OPTIONS) == scenes and _files(scenes) == before
    with pytest.raises(DataError, match='other parameters'):
        make_scenes(fmnist, scenes, 12, 4, seed=3, **OPTIONS)
    (tmp_path / 'taken').mkdir()
    with pytest.raises(DataError, match='not a scenes folder'):
        make_scenes(fmnist, tmp_path / 'taken', 2, 2, **OPTIONS)
    with pytest.raises(BanetError, match='cannot read IDX file'):
        make_scenes(tmp_path / 'nowhere', tmp_path / 'fails', 2, 2, **OPTIONS)
    assert not (tmp_path / 'fails').exists() and not list(tmp_path.glob('.fails.*'))  # nothing half-written


def test_read_idx(fmnist, tmp_path):
    images = read_idx(fmnist / 'train-images-idx3-ubyte.gz')
    assert images.shape == (30, 28, 28) and images.dtype == np.uint8
    assert read_idx(fmnist / 'train-labels-idx1-ubyte.gz').tolist() == [i % 10 for i in range(30)]
    broken = tmp_path / 'broken.gz'
    with gzip.open(fmnist / 'train-images-idx3-ubyte.gz') as f:
        broken.write_bytes(gzip.compress(f.read()[:-5]))
    with pytest.raises(BanetError, match='truncated'):
        read_idx(broken)


def test_scenes_command(fmnist, tmp_path, capsys):
    from banet.cli import main
    out = tmp_path / 'cli'
    assert main(['detect', 'scenes', '--fmnist-dir', str(fmnist), '--output', str(out), '--train', '3', '--val', '2',
                 '--canvas', '64']) == 0
    assert str(out) in capsys.readouterr().out
    ids = [len(json.loads((out / 'annotations' / f'instances_{s}.json').read_text())['images']) for s in ('train', 'val')]
    assert ids == [3, 2] and len(list((out / 'train').glob('*.png'))) == 3
    assert main(['detect', 'scenes', '--fmnist-dir', str(tmp_path / 'none'), '--output', str(tmp_path / 'x')]) == 2
    assert 'does not exist' in capsys.readouterr().err and not (tmp_path / 'x').exists()
