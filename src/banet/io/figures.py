"""The one matplotlib set-up: a headless backend, imported only when a figure is drawn."""
from pathlib import Path
from types import ModuleType

__all__ = ["pyplot", "save_figure"]


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures are written to files, never shown)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path) -> Path:
    """Write ``fig`` as a PNG atomically (an existing file survives a failure) and close it; returns the path."""
    from .files import atomic_write
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=100, bbox_inches='tight'))
    finally:
        pyplot().close(fig)
