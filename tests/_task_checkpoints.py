"""Detection and segmentation checkpoint folders as their trainers write them (random weights), for the tests."""
from pathlib import Path
from types import SimpleNamespace

import torch

from _coco_data import SIZE
from banet.detection import create_detector, detector_config
from banet.io import save_json_file, save_state_dict_file
from banet.segmentation import create_segmenter, segmenter_config

DETECTOR = SimpleNamespace(arch='fasterrcnn', backbone='resnet18', num_classes=None, trainable_layers=5,
                           norm='frozen', min_size=SIZE, max_size=SIZE, fpn_channels=16)
SEGMENTER = SimpleNamespace(arch='fcn', backbone='resnet18', output_stride=8, aux=False, norm='bn',
                            trainable_layers=None, base_size=SIZE)
CATEGORIES = {1: 'red', 2: 'blue'}


def write_detector(folder: Path, seed: int = 0) -> torch.nn.Module:
    """A detection checkpoint folder as ``banet detect train`` writes it (random weights)."""
    config = detector_config(DETECTOR, 3, CATEGORIES)
    torch.manual_seed(seed)
    model = create_detector(**config['detector'])
    save_state_dict_file(model.state_dict(), folder / 'model.safetensors')
    save_json_file(config, folder / 'config.json')
    return model


def write_segmenter(folder: Path, seed: int = 0) -> torch.nn.Module:
    """A segmentation checkpoint folder as ``banet segment train`` writes it (random weights)."""
    config = segmenter_config(SEGMENTER, 3, CATEGORIES)
    torch.manual_seed(seed)
    model = create_segmenter(**config['segmenter'])
    save_state_dict_file(model.state_dict(), folder / 'model.safetensors')
    save_json_file(config, folder / 'config.json')
    return model
