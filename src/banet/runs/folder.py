"""The run folder: where it is (a new name, ``--resume RUN`` or ``--resume auto``), its ``config.yaml``, and the
checkpoint a resume continues from."""
import time
from pathlib import Path
from typing import Any, Dict, Optional, Type

import yaml

from ..config import AUTO, config_dict, from_mapping
from ..errors import BanetError, MissingFileError
from ..io import atomic_write
from .checkpoint import complete_checkpoint, settle
from .distributed import DistInfo, broadcast_object
from .precision import Precision

__all__ = ['check_resume', 'run_folder', 'default_name', 'write_config', 'saved_config', 'resume_point']


def check_resume(resume: Optional[str], experiment: Optional[str]) -> None:
    """What a resume needs before any work: ``auto`` a fixed experiment name, a named run its ``config.yaml``."""
    if resume == AUTO:
        if not experiment:
            raise BanetError('--resume auto needs a fixed --experiment NAME: the run folder that every restart '
                             'continues')
    elif resume and not (Path(resume) / 'config.yaml').is_file():
        raise MissingFileError(f'--resume {resume}: not a run folder (it holds no config.yaml)')


def run_folder(cfg: Any, default_name: str, info: DistInfo) -> Path:
    """``cfg.resume``'s folder, ``OUTPUT/EXPERIMENT`` for ``--resume auto``, else ``OUTPUT/EXPERIMENT`` or
    ``OUTPUT/default_name`` (rank 0's name on every process)."""
    check_resume(cfg.resume, cfg.experiment)
    if cfg.resume and cfg.resume != AUTO:
        return Path(cfg.resume)
    return Path(cfg.output) / broadcast_object(cfg.experiment or default_name, info)


def default_name(*parts: str) -> str:
    """``PART-PART-YYYYmmdd-HHMMSS`` (slashes of dataset names made dashes)."""
    return '-'.join([*(p.replace('/', '_') for p in parts), time.strftime('%Y%m%d-%H%M%S')])


def write_config(run_dir: Path, cfg: Any, precision: Precision, info: DistInfo) -> None:
    """Rank 0 creates ``run_dir`` and writes and prints ``config.yaml`` (every option, the precision as a comment)."""
    if not info.primary:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    text = f'# precision on {info.device}: {precision.describe()}\n' + yaml.safe_dump(config_dict(cfg),
                                                                                       sort_keys=False)
    atomic_write(run_dir / 'config.yaml', lambda tmp: Path(tmp).write_text(text))
    print(f'config (saved to {run_dir / "config.yaml"}):\n{text}', flush=True)


def saved_config(run_dir: Path, cls: Type) -> Dict[str, Any]:
    """The options a run folder's ``config.yaml`` recorded, checked against the config class ``cls``."""
    file = Path(run_dir) / 'config.yaml'
    if not file.is_file():
        return {}
    return from_mapping(cls, yaml.safe_load(file.read_text()) or {}, f'{file}')


def resume_point(run_dir: Path, resume: Optional[str], info: DistInfo) -> Optional[Path]:
    """The complete ``last/`` checkpoint a resume continues from, or None (no resume, or no save was completed:
    said in one line, and the run starts from the beginning). Rank 0 first settles ``last/`` and ``best/``
    after a killed save and removes the temporary files of killed atomic writes; the others wait for it."""
    if not resume:
        return None
    if info.primary:
        settle(run_dir / 'last')
        settle(run_dir / 'best')
        for leftover in run_dir.glob('.*.tmp'):  # an atomic write (metrics, plot, config) killed part-way
            leftover.unlink()
    broadcast_object(None, info)  # a barrier: no process reads last/ while rank 0 renames it
    found = complete_checkpoint(run_dir / 'last')
    if found is None and info.primary:
        print(f'resume: {run_dir} holds no complete checkpoint yet; the run starts from the beginning', flush=True)
    return found
