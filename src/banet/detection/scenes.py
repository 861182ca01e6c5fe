"""Fashion-MNIST scenes: a small offline COCO-format detection and instance-segmentation set.

Each canvas holds a few Fashion-MNIST items (Xiao et al., *Fashion-MNIST*, arXiv:1708.07747) pasted at random
scales and places; every item gets its visible silhouette as mask (RLE) and the box of that mask. Train scenes
use the Fashion-MNIST training images, val scenes the test images.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision.datasets import FashionMNIST

from ..dense.errors import DataError
from ..errors import BanetError
from ..io.idx import read_idx

__all__ = ['CATEGORIES', 'SPLITS', 'read_idx', 'make_scenes']

CATEGORIES = tuple(FashionMNIST.classes)  # category id = Fashion-MNIST label + 1
SPLITS = {'train': 'train', 'val': 't10k'}  # scene split -> Fashion-MNIST IDX prefix
_PARAMS_FILE = 'scenes.json'


def _load_fmnist(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    return (read_idx(folder / f'{prefix}-images-idx3-ubyte.gz'), read_idx(folder / f'{prefix}-labels-idx1-ubyte.gz'))


def _scene(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, p: dict[str, Any]):
    """One canvas (H×W×3 uint8) and its items as (label, visible mask); later items occlude earlier ones."""
    size = p['canvas']
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    items: list[tuple[int, np.ndarray]] = []
    for _ in range(rng.integers(p['items'][0], p['items'][1] + 1)):
        k = int(rng.integers(len(images)))
        side = int(rng.integers(p['item_size'][0], p['item_size'][1] + 1))
        pixels = np.asarray(Image.fromarray(images[k]).resize((side, side), Image.BILINEAR))
        tint = rng.uniform(0.5, 1.0, size=3)
        shape = pixels > p['threshold']
        for _ in range(p['placement_tries']):
            y, x = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            silhouette = np.zeros((size, size), dtype=bool)
            silhouette[y:y + side, x:x + side] = shape
            if all((m & ~silhouette).sum() >= p['min_visible'] * m.sum() for _, m in items):
                break
        else:
            continue  # no place leaves the earlier items visible enough: skip this item
        canvas[y:y + side, x:x + side][shape] = (pixels[..., None] * tint).astype(np.uint8)[shape]
        items = [(label, m & ~silhouette) for label, m in items]
        items.append((int(labels[k]) + 1, silhouette))
    return canvas, [(label, m) for label, m in items if m.any()]


def _annotation(ann_id: int, image_id: int, label: int, mask: np.ndarray) -> dict[str, Any]:
    ys, xs = np.nonzero(mask)
    rle = mask_utils.encode(np.asfortranarray(mask[..., None].astype(np.uint8)))[0]
    x0, y0 = int(xs.min()), int(ys.min())
    return dict(id=ann_id, image_id=image_id, category_id=label, iscrowd=0, area=int(mask.sum()),
                bbox=[x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
                segmentation=dict(size=list(rle['size']), counts=rle['counts'].decode('ascii')))


def _write_split(folder: Path, split: str, n: int, images: np.ndarray, labels: np.ndarray,
                 p: dict[str, Any], rng: np.random.Generator) -> None:
    (folder / split).mkdir()
    coco: dict[str, Any] = dict(
        info=dict(description=f'Fashion-MNIST scenes ({split})', **p), images=[], annotations=[],
        categories=[dict(id=i + 1, name=name, supercategory='fashion') for i, name in enumerate(CATEGORIES)])
    for image_id in range(1, n + 1):
        canvas, items = _scene(rng, images, labels, p)
        file_name = f'{image_id:06d}.png'
        Image.fromarray(canvas).save(folder / split / file_name, compress_level=1)
        coco['images'].append(dict(id=image_id, file_name=file_name, width=p['canvas'], height=p['canvas']))
        for label, mask in items:
            coco['annotations'].append(_annotation(len(coco['annotations']) + 1, image_id, label, mask))
    (folder / 'annotations' / f'instances_{split}.json').write_text(json.dumps(coco))


def make_scenes(fmnist_dir: str | Path, out_dir: str | Path, n_train: int, n_val: int, seed: int = 0, *,
                canvas: int = 128, items: tuple[int, int] = (1, 4), item_size: tuple[int, int] = (28, 64),
                threshold: int = 32, min_visible: float = 0.5, placement_tries: int = 10) -> Path:
    """Write ``n_train``/``n_val`` scenes in the COCO layout under ``out_dir`` (once) and return ``out_dir``.

    ``fmnist_dir`` holds Fashion-MNIST's IDX ``.gz`` files (e.g. ``/usr/share/datasets/fashion-mnist``). Each
    ``canvas``×``canvas`` PNG gets ``items`` (min, max) items of side ``item_size`` (min, max) px; an item's mask
    is its pixels above ``threshold`` minus what later items cover, its box that of the mask. A placement must
    leave every earlier item ``min_visible`` of its area (else another place is drawn, ``placement_tries``
    times, then the item is skipped). Deterministic in ``seed``. Everything is written to a temporary folder
    renamed to ``out_dir`` at the end; an existing ``out_dir`` made with the same parameters is returned as is,
    one made with others raises DataError.
    """
    out_dir = Path(out_dir)
    params = dict(n_train=n_train, n_val=n_val, seed=seed, canvas=canvas, items=list(items),
                  item_size=list(item_size), threshold=threshold, min_visible=min_visible,
                  placement_tries=placement_tries)
    if not 1 <= items[0] <= items[1] or not 1 <= item_size[0] <= item_size[1] <= canvas:
        raise BanetError(f'need 1 <= items[0] <= items[1] and 1 <= item_size[0] <= item_size[1] <= canvas, got '
                         f'items={items}, item_size={item_size}, canvas={canvas}')
    if (out_dir / _PARAMS_FILE).is_file():
        if json.loads((out_dir / _PARAMS_FILE).read_text()) != params:
            raise DataError(f'{out_dir} holds scenes made with other parameters ({out_dir / _PARAMS_FILE}); '
                            'remove it or choose another out_dir')
        return out_dir
    if out_dir.exists():
        raise DataError(f'{out_dir} exists and is not a scenes folder (no {_PARAMS_FILE}); choose another out_dir')
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', dir=out_dir.parent))
    try:
        (tmp / 'annotations').mkdir()
        for k, (split, n) in enumerate(zip(SPLITS, (n_train, n_val))):
            images, labels = _load_fmnist(Path(fmnist_dir), SPLITS[split])
            _write_split(tmp, split, n, images, labels, params, np.random.default_rng([seed, k]))
        (tmp / _PARAMS_FILE).write_text(json.dumps(params))
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
