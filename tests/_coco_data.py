"""A tiny COCO-layout data set written by the detection and segmentation tests."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 64
# per image: (category, x, y, w, h, iscrowd); colours make the categories learnable
IMAGES = {
    1: [(1, 8, 8, 20, 24, 0), (2, 36, 30, 22, 20, 0)],
    2: [(1, 30, 6, 24, 22, 0), (2, 4, 36, 20, 20, 1), (1, 10, 10, 0, 12, 0)],  # + a crowd and a zero-width box
    3: [],                                                                       # no annotation
    4: [(2, 20, 20, 30, 28, 0)],
}
COLOURS = {1: (230, 40, 40), 2: (40, 40, 230)}


def _rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE (column-major run lengths, starting with a zero run), as used for crowds."""
    flat = mask.flatten(order='F')
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {'size': list(mask.shape), 'counts': np.diff(np.concatenate([[0], changes])).tolist()}


def write_coco(root: Path, split: str = 'train2017', corrupt: bool = False) -> Path:
    """root/annotations/instances_{split}.json and root/{split}/*.png; ``corrupt`` adds an unreadable image 5."""
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, objects in IMAGES.items():
        pixels = np.full((SIZE, SIZE, 3), 20, dtype=np.uint8)
        for category, x, y, w, h, crowd in objects:
            pixels[y:y + h, x:x + w] = COLOURS[category]
            if crowd:
                mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
                mask[y:y + h, x:x + w] = 1
                segmentation = _rle(mask)
            else:
                segmentation = [[x, y, x + w, y, x + w, y + h, x, y + h]]
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=category, iscrowd=crowd,
                                    bbox=[x, y, w, h], area=w * h, segmentation=segmentation))
        Image.fromarray(pixels).save(root / split / f'{image_id}.png')
        images.append(dict(id=image_id, file_name=f'{image_id}.png', width=SIZE, height=SIZE))
    if corrupt:
        (root / split / '5.png').write_bytes(b'this is not a png')
        images.append(dict(id=5, file_name='5.png', width=SIZE, height=SIZE))
    categories = [dict(id=1, name='red', supercategory='shape'), dict(id=2, name='blue', supercategory='shape')]
    (root / 'annotations' / f'instances_{split}.json').write_text(
        json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return root
