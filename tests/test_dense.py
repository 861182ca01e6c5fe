"""The shared base of the dense tasks: detection and segmentation import banet.dense, never each other, and their
validation sharded over two gloo processes gives the numbers of one process (AP, mIoU)."""
import ast
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

pytest.importorskip('pycocotools')

import banet  # noqa: E402
from _coco_data import write_coco  # noqa: E402
from banet.dense import eval_shard  # noqa: E402
from banet.runs.distributed import DistInfo  # noqa: E402
from _task_checkpoints import write_detector, write_segmenter  # noqa: E402

SRC = Path(banet.__file__).parent


def _banet_imports(module: Path) -> set[str]:
    """The banet packages (``detection``, ``dense``, ...) that ``module`` imports, absolutely or relatively."""
    package = module.relative_to(SRC).parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            parts = base + tuple((node.module or '').split('.')) if node.module else base
            found.add(parts[0] if parts else '')
        elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('banet.'):
            found.add(node.module.split('.')[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split('.')[1] for a in node.names if a.name.startswith('banet.')}
    return found


@pytest.mark.parametrize('task, other', [('segmentation', 'detection'), ('detection', 'segmentation')])
def test_no_dense_task_imports_the_other(task, other):
    offenders = sorted(str(f.relative_to(SRC)) for f in (SRC / task).glob('*.py') if other in _banet_imports(f))
    assert offenders == [], f'{task} imports {other}'
    assert any('dense' in _banet_imports(f) for f in (SRC / task).glob('*.py'))


def test_importing_segmentation_loads_no_detector():
    code = 'import sys, banet.segmentation; assert "banet.detection" not in sys.modules, "banet.detection loaded"'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC.parent), os.environ.get('PYTHONPATH', '')]))
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-500:]


@pytest.mark.parametrize('n', range(8))
@pytest.mark.parametrize('world', [1, 2, 3, 4])
def test_eval_shards_cover_every_image_once(n, world):
    shards = [eval_shard(list(range(n)), DistInfo(rank=r, world_size=world)) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))  # in order, no image twice, none left out
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def _validate(data: str, out: str, tag: str) -> None:
    from banet.detection import DetectValidateConfig, validate_detector
    from banet.segmentation import SegmentValidateConfig, validate_segmenter
    common = dict(data_dir=data, device='cpu', threads=1, progress=False)
    validate_detector(DetectValidateConfig(checkpoint=f'{out}/det', batch_size=1,
                                           results_file=f'{out}/det-{tag}.json', **common))
    validate_segmenter(SegmentValidateConfig(checkpoint=f'{out}/seg', results_file=f'{out}/seg-{tag}.json', **common))


def _worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    _validate(data, out, f'ddp{rank}')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_validation_equals_one_process(tmp_path):
    root = write_coco(tmp_path / 'coco', 'val')
    file = root / 'annotations' / 'instances_val.json'
    data = json.loads(file.read_text())  # three images: two processes get one and two, nothing is repeated
    data['images'] = [i for i in data['images'] if i['id'] != 4]
    data['annotations'] = [a for a in data['annotations'] if a['image_id'] != 4]
    file.write_text(json.dumps(data))
    write_detector(tmp_path / 'det')
    write_segmenter(tmp_path / 'seg')
    _validate(str(root), str(tmp_path), 'single')
    mp.spawn(_worker, args=(2, _free_port(), str(root), str(tmp_path)), nprocs=2, join=True)
    assert not (tmp_path / 'det-ddp1.json').exists()  # the first process writes the result
    det = {k: json.loads((tmp_path / f'det-{k}.json').read_text()) for k in ('single', 'ddp0')}
    seg = {k: json.loads((tmp_path / f'seg-{k}.json').read_text()) for k in ('single', 'ddp0')}
    assert det['single']['bbox_AP50'] > 0 and 0 < seg['single']['miou'] < 1  # numbers worth comparing
    for name in ('images', 'bbox_AP', 'bbox_AP50', 'bbox_AP75', 'bbox_APs'):
        assert det['ddp0'][name] == det['single'][name], name
    for name in ('images', 'miou', 'pixel_acc', 'iou'):
        assert seg['ddp0'][name] == seg['single'][name], name
    assert det['single']['images'] == seg['single']['images'] == 3
