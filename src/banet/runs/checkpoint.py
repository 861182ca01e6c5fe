"""The checkpoint writer: a run's ``last/`` and ``best/`` folders, each written whole and renamed into place.

A folder holds ``model.safetensors`` (+ ``model_ema.safetensors``), the task's ``config.json`` and, in ``last/``,
``train_state.pt`` (optimiser, scheduler, loss scaler, RNG states, epoch; loads with ``weights_only=True``). As in
timm's ``CheckpointSaver`` the task supplies its own state; unlike a file-by-file save, a kill at any instant leaves
one complete folder to resume from. A save of ``RUN/last``

1. writes every file into ``RUN/.last.new`` (removing what an earlier killed save left there);
2. renames ``RUN/last`` to ``RUN/.last.old`` (the previous complete folder, kept until the new one is in place);
3. renames ``RUN/.last.new`` to ``RUN/last``;
4. removes ``RUN/.last.old``.

After a kill, :func:`complete_checkpoint` finds the complete folder of every intermediate state: ``last`` when it
exists (steps 1, 3, 4), else ``.last.new`` when ``.last.old`` exists beside it (killed between steps 2 and 3: the new
folder was finished before the old one was moved). :func:`settle` turns such a state back into a plain ``last/``.
Renames survive a killed process; they are not synced to disk against a power cut.

Test hook: ``BANET_TEST_KILL_SAVE=NAME:S:K`` makes the process SIGKILL itself right after step ``K`` of its
``S``-th save of a folder called ``NAME`` (``last`` or ``best``; both counted from 1; each file written counts as a
step, then each rename and the removal), so that a test can stop a real run at every point of a save.
"""
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from safetensors import safe_open
from torch import nn

from ..errors import BanetError, MissingFileError
from ..io import CONFIG, EMA_WEIGHTS, WEIGHTS, load_state_dict_file, save_json_file, save_state_dict_file, \
    save_torch_file

__all__ = ['TRAIN_STATE', 'KILL_ENV', 'write_folder', 'save_checkpoint', 'complete_checkpoint', 'settle',
           'load_train_state']

TRAIN_STATE = 'train_state.pt'
KILL_ENV = 'BANET_TEST_KILL_SAVE'
_saves: Dict[str, int] = {}  # saves of each folder name in this process, for the test hook


def _new(folder: Path) -> Path:
    return folder.with_name(f'.{folder.name}.new')


def _old(folder: Path) -> Path:
    return folder.with_name(f'.{folder.name}.old')


def _kill_point() -> Optional[tuple]:
    value = os.environ.get(KILL_ENV)
    if not value:
        return None
    name, save, step = value.split(':')
    return name, int(save), int(step)


def complete_checkpoint(folder: Path) -> Optional[Path]:
    """The complete checkpoint folder that a save of ``folder`` left, whenever it was killed; None if none was
    completed (read-only: every process of a run may call it)."""
    folder = Path(folder)
    if folder.is_dir():
        return folder
    if _old(folder).is_dir() and _new(folder).is_dir():
        return _new(folder)
    return None


def settle(folder: Path) -> Optional[Path]:
    """Bring ``folder`` back to a plain complete folder after a killed save (finishing its renames, dropping a
    partial new folder and a leftover old one); returns ``folder``, or None when no save of it was completed."""
    folder = Path(folder)
    found = complete_checkpoint(folder)
    if found is not None and found != folder:
        os.replace(found, folder)
    for leftover in (_new(folder), _old(folder)):
        if leftover.is_dir():
            shutil.rmtree(leftover)
    return folder if found is not None else None


def write_folder(folder: Path, files: Dict[str, Callable[[Path], Any]]) -> Path:
    """Write ``folder`` whole: ``files`` maps each file name to a function writing that path, called in order in a
    temporary folder beside it, which then replaces ``folder`` (see the module docstring for the steps)."""
    folder = Path(folder)
    _saves[folder.name] = save = _saves.get(folder.name, 0) + 1
    kill, step = _kill_point(), 0

    def done() -> None:
        nonlocal step
        step += 1
        if kill == (folder.name, save, step):
            os.kill(os.getpid(), signal.SIGKILL)

    settle(folder)
    new, old = _new(folder), _old(folder)
    new.mkdir(parents=True)
    for name, write in files.items():
        write(new / name)
        done()
    if folder.is_dir():
        os.replace(folder, old)
        done()
    os.replace(new, folder)
    done()
    if old.is_dir():
        shutil.rmtree(old)
        done()
    return folder


def save_checkpoint(folder: Path, model: nn.Module, config: Dict[str, Any], ema: Optional[nn.Module] = None,
                    train_state: Optional[Dict[str, Any]] = None) -> Path:
    """Write weights (their epoch in the safetensors header), EMA weights, ``config.json`` and the training state
    as one folder (:func:`write_folder`)."""
    meta = {'epoch': str(config.get('epoch', ''))}
    files: Dict[str, Callable[[Path], Any]] = {
        WEIGHTS: lambda p: save_state_dict_file(model.state_dict(), p, metadata=meta)}
    if ema is not None:
        files[EMA_WEIGHTS] = lambda p: save_state_dict_file(ema.state_dict(), p, metadata=meta)
    files[CONFIG] = lambda p: save_json_file(config, p)
    if train_state is not None:
        files[TRAIN_STATE] = lambda p: save_torch_file(train_state, p)
    return write_folder(folder, files)


def load_train_state(folder: Path) -> Dict[str, Any]:
    """The training state of checkpoint folder ``folder`` (weights_only), checked against its weights' epoch."""
    folder = Path(folder)
    if not (folder / TRAIN_STATE).is_file():
        raise MissingFileError(f'cannot resume: {folder / TRAIN_STATE} does not exist (is {folder.parent} a run '
                               'folder?)')
    state = load_state_dict_file(folder / TRAIN_STATE)
    with safe_open(str(folder / WEIGHTS), 'pt') as f:
        epoch = (f.metadata() or {}).get('epoch')
    if epoch != str(state['epoch']):
        raise BanetError(f'{folder}: the weights (epoch {epoch}) and the training state (epoch {state["epoch"]}) '
                         'do not match; the folder was changed after banet wrote it')
    return state
