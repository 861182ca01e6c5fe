"""COCO-layout annotations for both dense tasks: where the files are, reading them, and checking what they say.

Layout (COCO 2017): ``DIR/annotations/instances_{split}.json`` and the images in ``DIR/{split}/``
(Lin et al., *Microsoft COCO: Common Objects in Context*, ECCV 2014). Every problem of the files is one
:class:`~banet.dense.errors.DataError` line naming the file.
"""
import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision.datasets import CocoDetection

from .errors import DataError

__all__ = ['coco_paths', 'load_coco', 'check_coco', 'read_sample']


def coco_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """``(image_dir, annotations_file)`` of ``split``; DataError naming the expected path if the file is missing."""
    root = Path(root)
    ann_file = root / 'annotations' / f'instances_{split}.json'
    if not ann_file.is_file():
        raise DataError(f'COCO annotations file not found: {ann_file} (expected DIR/annotations/instances_{split}.json '
                        f'and the images in DIR/{split}/)')
    return root / split, ann_file


def load_coco(root: str | Path, split: str) -> CocoDetection:
    """torchvision's ``CocoDetection`` of ``split`` (its ``.coco`` is the pycocotools ground truth), checked with
    :func:`check_coco`."""
    image_dir, ann_file = coco_paths(root, split)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its loading progress
            base = CocoDetection(str(image_dir), str(ann_file))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f'{ann_file} is not valid JSON ({e})') from None
    except AssertionError:  # pycocotools' only check: the top level must be a JSON object
        raise DataError(f'{ann_file} is not a COCO annotations file (its top level is not a JSON object with '
                        '"images", "annotations" and "categories")') from None
    check_coco(base.coco, ann_file, image_dir)
    return base


def _missing(image_dir: Path, names: list[str]) -> list[str]:
    """The ``names`` that do not exist under ``image_dir`` (one directory listing, a stat only for the others)."""
    listed = set(os.listdir(image_dir)) if image_dir.is_dir() else set()
    return [n for n in names if n not in listed and not (image_dir / n).is_file()]


def check_coco(coco: Any, ann_file: Path, image_dir: Path) -> None:
    """DataError (one line naming ``ann_file`` or the image) for an annotation whose ``category_id`` or
    ``image_id`` the file does not list, and for a listed image missing from ``image_dir``.

    What the file may hold is left as COCO defines it: boxes under 1 px or past the image edge and images without
    annotations are the data sets' to handle.
    """
    categories = sorted(coco.cats)
    for ann in coco.dataset.get('annotations', []):
        if ann.get('category_id') not in coco.cats:
            raise DataError(f'{ann_file}: annotation {ann.get("id")} has category_id {ann.get("category_id")}, '
                            f'which is not among the file\'s categories {categories}')
        if ann.get('image_id') not in coco.imgs:
            raise DataError(f'{ann_file}: annotation {ann.get("id")} refers to image_id {ann.get("image_id")}, '
                            'which the file does not list in "images"')
    names = [info['file_name'] for info in coco.imgs.values()]
    missing = _missing(image_dir, names)
    if missing:
        raise DataError(f'image {image_dir / missing[0]} is listed in {ann_file} but does not exist '
                        f'({len(missing)} of the {len(names)} listed images are missing)')


def read_sample(base: CocoDetection, dataset: Dataset, index: int) -> tuple[Any, Any]:
    """``dataset[index]`` with an unreadable image turned into one DataError line naming the file."""
    try:
        return dataset[index]
    except OSError as e:  # PIL's UnidentifiedImageError, truncated files, files removed since loading
        path = Path(base.root) / base.coco.imgs[base.ids[index]]['file_name']
        raise DataError(f'cannot read image {path}: {e}') from None
