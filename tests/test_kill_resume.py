"""A real training process killed at any point of a checkpoint save (or at a random instant) resumes to the end
with the weights and metrics of an uninterrupted run; ``torchrun --max-restarts`` recovers a killed worker.

The deterministic kill points use the writer's test hook (``BANET_TEST_KILL_SAVE=NAME:S:K``: SIGKILL right after
step K of the S-th save of folder NAME, see :mod:`banet.runs.checkpoint`): in the middle of a folder, between the
two renames (no ``last/`` on disk), after them (the old folder left over), and in the very first save (no
complete checkpoint: the resume starts from the beginning).
"""
import csv
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from banet.cli import main
from banet.io import load_state_dict_file
from banet.runs import KILL_ENV

from _train_data import make_fashion_mnist

TIMING = ('train_img_s', 'first_step_s', 'val_img_s', 'ema_val_img_s')  # wall-clock columns differ run to run


@pytest.fixture(scope='module')
def fmnist(tmp_path_factory):
    return make_fashion_mnist(tmp_path_factory.mktemp('fmnist'), n_train=32, n_test=16)


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    pytest.importorskip('pycocotools')
    from _coco_data import write_coco
    root = tmp_path_factory.mktemp('coco')
    write_coco(root, 'train')
    return write_coco(root, 'val')


@pytest.fixture(scope='module')
def straight(fmnist, tmp_path_factory):
    """The uninterrupted classification run every killed one must end equal to."""
    out = tmp_path_factory.mktemp('straight')
    assert main(_classify(fmnist, out, 'straight')) == 0
    return out / 'straight'


@pytest.fixture(scope='module')
def straight_detect(coco, tmp_path_factory):
    out = tmp_path_factory.mktemp('straight_detect')
    assert main(_detect(coco, out, 'straight')) == 0
    return out / 'straight'


def _classify(data: Path, out: Path, name: str):
    # EMA, mixup (NumPy), dropout (torch) and the loader's shuffling: every RNG the resume must restore
    return ['train', '--model', 'resnet20_cifar', '--dataset', 'fashion_mnist', '--data-dir', str(data), '-b', '16',
            '--epochs', '3', '--lr', '0.05', '--drop', '0.2', '--mixup', '0.4', '--model-ema', '--model-ema-decay',
            '0.9', '--sched-on-updates', '--warmup-epochs', '1', '--pad-crop', '2', '--deterministic',
            '--no-amp', '--threads', '1', '--no-progress', '--workers', '0', '--output', str(out),
            '--experiment', name]


def _detect(data: Path, out: Path, name: str):
    return ['detect', 'train', '--arch', 'fasterrcnn', '--backbone', 'resnet18', '--data-dir', str(data), '-b', '2',
            '--epochs', '2', '--lr', '0.01', '--warmup-epochs', '0', '--min-size', '64', '--max-size', '64',
            '--fpn-channels', '16', '--trainable-layers', '5', '--no-amp', '--threads', '1', '--no-progress',
            '--output', str(out), '--experiment', name]


def _run(args, env_extra=None) -> subprocess.Popen:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen([sys.executable, '-m', 'banet', *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _rows(run: Path):
    with open(run / 'metrics.csv', newline='') as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def _assert_same_run(a: Path, b: Path) -> None:
    for folder in ('last', 'best'):
        for name in ('model.safetensors', 'model_ema.safetensors'):
            if not (a / folder / name).exists():
                continue
            wa, wb = load_state_dict_file(a / folder / name), load_state_dict_file(b / folder / name)
            assert wa.keys() == wb.keys()
            assert all(torch.equal(wa[k], wb[k]) for k in wa), f'{folder}/{name} differs'
    sa = torch.load(a / 'last' / 'train_state.pt', weights_only=True)
    sb = torch.load(b / 'last' / 'train_state.pt', weights_only=True)
    assert (sa['epoch'], sa['num_updates'], sa['best']) == (sb['epoch'], sb['num_updates'], sb['best'])
    assert _rows(a) == _rows(b)  # every epoch once, the same losses and metrics
    assert sorted(p.name for p in b.iterdir() if p.name.startswith('.')) == []  # no temporary folder left


def _killed(args, kill_point: str) -> None:
    """Run ``banet ARGS`` in a process that SIGKILLs itself at ``kill_point`` of a save."""
    proc = _run(args, {KILL_ENV: kill_point})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, out


@pytest.mark.parametrize('kill_point, complete', [
    ('last:1:2', False),   # first save, half the folder written: nothing complete, start again
    ('last:2:2', True),    # second save, mid-folder
    ('last:2:5', True),    # between the renames: last/ is gone, .last.old and .last.new are there
    ('last:2:6', True),    # after them: .last.old left over
    ('best:1:3', False),   # best/ written but not renamed, before the first last/
])
def test_classification_killed_in_a_save_resumes_exactly(fmnist, straight, tmp_path, capsys, kill_point, complete):
    run = tmp_path / 'killed'
    _killed(_classify(fmnist, tmp_path, 'killed'), kill_point)
    capsys.readouterr()
    assert main(['train', '--resume', str(run), '--threads', '1', '--no-progress']) == 0
    said = 'holds no complete checkpoint yet; the run starts from the beginning' in capsys.readouterr().out
    assert said != complete
    _assert_same_run(straight, run)


def test_classification_killed_at_a_random_instant_resumes_exactly(fmnist, straight, tmp_path):
    # the unattended form: the same command with --resume auto, before and after the kill (which may come before
    # the run folder exists, or after the run ended)
    args = [*_classify(fmnist, tmp_path, 'killed'), '--resume', 'auto']
    started = time.perf_counter()
    _run(_classify(fmnist, tmp_path, 'probe')).communicate(timeout=300)
    whole = time.perf_counter() - started
    delay = random.Random().uniform(0.3 * whole, whole)  # not the global one: the runs seed it; start-up comes first
    proc = _run(args)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.kill()
    proc.communicate()
    print(f'killed after {delay:.2f} s of {whole:.2f} s (return code {proc.returncode})')
    assert main(args) == 0
    _assert_same_run(straight, tmp_path / 'killed')


@pytest.mark.parametrize('kill_point', [
    'last:1:1',  # the first save, one file written: the resume starts from the beginning
    'last:2:4',  # between the renames (model, config.json, train_state.pt written; last/ moved to .last.old)
    'last:2:5',  # after them, .last.old left over
])
def test_detection_killed_in_a_save_resumes_exactly(coco, straight_detect, tmp_path, kill_point):
    run = tmp_path / 'killed'
    _killed(_detect(coco, tmp_path, 'killed'), kill_point)
    assert main(['detect', 'train', '--resume', str(run), '--threads', '1', '--no-progress']) == 0
    _assert_same_run(straight_detect, run)


def test_resume_auto_starts_then_continues(fmnist, tmp_path, capsys):
    args = [*_classify(fmnist, tmp_path, 'auto'), '--resume', 'auto', '--epochs', '1']
    assert main(args) == 0  # nothing there yet: the run starts
    assert 'holds no complete checkpoint yet' in capsys.readouterr().out
    assert main([*args[:-2], '--epochs', '2']) == 0  # the same command with more epochs continues it
    rows = _rows(tmp_path / 'auto')
    assert [r['epoch'] for r in rows] == ['1', '2']
    assert torch.load(tmp_path / 'auto' / 'last' / 'train_state.pt', weights_only=True)['epoch'] == 2


def test_resume_errors_are_one_line(fmnist, tmp_path, capsys):
    no_name = [a for a in _classify(fmnist, tmp_path, 'x') if a not in ('--experiment', 'x')]
    assert main([*no_name, '--resume', 'auto']) == 2
    assert '--resume auto needs a fixed --experiment NAME' in capsys.readouterr().err
    assert main(['train', '--resume', str(tmp_path / 'nowhere'), '--threads', '1']) == 2
    assert 'not a run folder (it holds no config.yaml)' in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker_pid(agent: int, rank: int) -> int:
    """The pid of torchrun's worker of ``rank`` (a child of the agent whose environment says RANK=rank)."""
    for child in Path(f'/proc/{agent}/task/{agent}/children').read_text().split():
        environ = Path(f'/proc/{child}/environ').read_bytes().split(b'\0')
        if f'RANK={rank}'.encode() in environ:
            return int(child)
    raise LookupError(f'no worker of rank {rank} under {agent}')


@pytest.mark.skipif(not Path('/proc/self/task').is_dir(), reason='finds the worker through /proc (Linux)')
def test_torchrun_restarts_a_killed_worker_and_every_epoch_is_logged_once(fmnist, tmp_path):
    run = tmp_path / 'elastic'
    args = [*_classify(fmnist, tmp_path, 'elastic'), '--resume', 'auto', '--epochs', '4', '-b', '8', '--device',
            'cpu']
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--max-restarts', '1', '--nproc-per-node', '2',
                '--master-addr', '127.0.0.1', '--master-port', str(_free_port()), '-m', 'banet']
    agent = subprocess.Popen([*torchrun, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, 'OMP_NUM_THREADS': '1'})
    try:
        deadline = time.time() + 120
        while not (run / 'metrics.csv').exists() or len(_rows(run)) < 1:  # epoch 1 done: epoch 2 is under way
            assert agent.poll() is None and time.time() < deadline, agent.communicate()[0]
            time.sleep(0.05)
        os.kill(_worker_pid(agent.pid, 1), signal.SIGKILL)
        out, _ = agent.communicate(timeout=240)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0, out
    assert [r['epoch'] for r in _rows(run)] == ['1', '2', '3', '4'], out
    assert torch.load(run / 'last' / 'train_state.pt', weights_only=True)['epoch'] == 4
    assert out.count('config (saved to') == 2, out  # the first attempt and the restart
