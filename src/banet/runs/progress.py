"""Progress bars (tqdm) that a run shows on its first process only."""
from typing import Iterable

from tqdm import tqdm

__all__ = ['bar']


def bar(items: Iterable, desc: str, enabled: bool, unit: str = 'it') -> tqdm:
    """A tqdm bar over ``items`` that vanishes when done; a silent pass-through when not ``enabled``."""
    return tqdm(items, desc=desc, total=len(items) if hasattr(items, '__len__') else None, disable=not enabled,
                dynamic_ncols=True, leave=False, unit=unit)
