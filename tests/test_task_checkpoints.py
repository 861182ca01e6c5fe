"""One checkpoint path for every task: read_checkpoint knows a checkpoint's task from its config.json, a checkpoint
of another task is one clear line in every validate command, --trust-pickle works in the dense validate commands,
and the io package imports nothing in a circle."""
import ast
import json
from pathlib import Path

import pytest
import timm
import torch

pytest.importorskip('pycocotools')

import banet  # noqa: E402
from _coco_data import SIZE, write_coco  # noqa: E402
from _task_checkpoints import CATEGORIES, write_detector, write_segmenter  # noqa: E402
from banet.cli import main  # noqa: E402
from banet.detection import load_detector  # noqa: E402
from banet.errors import BanetError  # noqa: E402
from banet.io import read_checkpoint, read_config  # noqa: E402
from banet.segmentation import load_segmenter  # noqa: E402

@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp('ckpt')
    write_detector(root / 'det')
    write_segmenter(root / 'seg')
    banet.save_pretrained(timm.create_model('resnet18', num_classes=3), root / 'cls')
    write_coco(root / 'coco', 'val')
    return root


def test_read_checkpoint_knows_the_task(checkpoints):
    assert read_checkpoint(checkpoints / 'cls').task == 'classification'
    for name, task in (('det', 'detection'), ('seg', 'segmentation')):
        ckpt = read_checkpoint(checkpoints / name, task=None)
        assert ckpt.task == task and ckpt.architecture is None and ckpt.layout == 'timm'
        assert read_checkpoint(checkpoints / name, task=task).file == checkpoints / name / 'model.safetensors'
        assert read_config(checkpoints / name, task=task)[1]['task'] == task


@pytest.mark.parametrize('name, task, found', [('cls', 'detection', 'classification'),
                                               ('cls', 'segmentation', 'classification'),
                                               ('det', 'classification', 'detection'),
                                               ('seg', 'detection', 'segmentation')])
def test_another_tasks_checkpoint_is_one_clear_error(checkpoints, name, task, found):
    with pytest.raises(BanetError, match=f'is not a {task} checkpoint but a {found} one') as err:
        read_checkpoint(checkpoints / name, task=task)
    assert '\n' not in str(err.value) and str(checkpoints / name / 'config.json') in str(err.value)


def test_the_loaders_rebuild_the_saved_models(tmp_path):
    want = write_detector(tmp_path / 'det', seed=3).state_dict()
    got = load_detector(tmp_path / 'det')
    assert not got.training and got.categories == CATEGORIES
    assert all(torch.equal(want[k], v) for k, v in got.state_dict().items())
    want = write_segmenter(tmp_path / 'seg', seed=4).state_dict()
    seg = load_segmenter(tmp_path / 'seg')
    assert seg.num_classes == 3 and seg.input_config['base_size'] == SIZE
    assert all(torch.equal(want[k], v) for k, v in seg.state_dict().items())


@pytest.mark.parametrize('argv, words', [
    (['detect', 'validate', '--checkpoint', 'cls'], ['not a detection checkpoint but a classification one',
                                                     'banet detect train']),
    (['segment', 'validate', '--checkpoint', 'det'], ['not a segmentation checkpoint but a detection one',
                                                      'banet detect validate']),
    (['validate', '--checkpoint', 'seg', '--dataset', 'fashion_mnist'], ['not a classification checkpoint but a '
                                                                         'segmentation one', 'banet segment validate']),
    (['detect', 'validate', '--checkpoint', 'cls/model.safetensors'], ['not a detection checkpoint']),
])
def test_every_validate_command_refuses_another_tasks_checkpoint_in_one_line(checkpoints, capsys, argv, words):
    argv = [str(checkpoints / a) if a in ('cls', 'det', 'seg', 'cls/model.safetensors') else a for a in argv]
    assert main(argv + ['--data-dir', str(checkpoints / 'coco'), '--device', 'cpu']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err


def test_bare_weights_are_no_detection_checkpoint(tmp_path, capsys):
    write_detector(tmp_path / 'det')
    (tmp_path / 'det' / 'config.json').unlink()
    assert main(['detect', 'validate', '--checkpoint', str(tmp_path / 'det'), '--data-dir', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'no config.json' in err[0] and 'banet detect train run folder' in err[0], err


@pytest.mark.parametrize('command, write', [('detect', write_detector), ('segment', write_segmenter)])
def test_trust_pickle_in_the_validate_commands(tmp_path, capsys, command, write):
    model = write(tmp_path / 'ckpt')
    (tmp_path / 'ckpt' / 'model.safetensors').unlink()
    torch.save(model.state_dict(), tmp_path / 'ckpt' / 'model.pth')
    coco = write_coco(tmp_path / 'coco', 'val')
    argv = [command, 'validate', '--checkpoint', str(tmp_path / 'ckpt'), '--data-dir', str(coco), '--threads', '1',
            '--device', 'cpu', '--no-progress', '--results-file', str(tmp_path / 'r.json')]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'model.pth' in err[0] and '--trust-pickle' in err[0], err
    assert main(argv + ['--trust-pickle']) == 0
    result = json.loads((tmp_path / 'r.json').read_text())
    assert result['checkpoint'] == str(tmp_path / 'ckpt' / 'model.pth') and result['images'] == 4


def _imports(module: Path, package: str) -> set[str]:
    """The sibling modules of ``package`` that ``module`` imports (relative or absolute)."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ''
            if node.level == 1:
                found |= {name.split('.')[0]} if name else {a.name for a in node.names}
            elif name.startswith(f'{package}.'):
                found.add(name.split('.')[2])
    return found


def test_io_imports_nothing_in_a_circle():
    folder = Path(banet.io.__file__).parent
    graph = {f.stem: _imports(f, 'banet.io') - {'__init__'} for f in folder.glob('*.py') if f.stem != '__init__'}

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, seen + (n,))) for n in graph.get(start, ()))
    assert [m for m in graph if reaches(m, m)] == []
    assert 'facts' in graph['loader'] and 'loader' in graph['pretrained']  # the two import one way only
