"""Per-epoch metrics: a CSV file, optional TensorBoard, and a PNG of the curves."""
import csv
import io
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import BanetError
from ..io.files import atomic_write
from ..io.figures import pyplot, save_figure

__all__ = ['MetricsLog', 'plot_metrics', 'CLASSIFICATION_PANELS']


class MetricsLog:
    """Appends one row per epoch to ``metrics.csv`` (kept across resumes) and mirrors it to TensorBoard."""

    def __init__(self, run_dir: Path, tensorboard: bool = False) -> None:
        self.path = run_dir / 'metrics.csv'
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise BanetError('--tensorboard needs the tensorboard package: pip install tensorboard') from e
            self.writer = SummaryWriter(str(run_dir / 'tensorboard'))

    def truncate(self, epochs: int) -> None:
        """Keep the rows of the first ``epochs`` epochs (a resume drops rows written after its checkpoint); the
        file is replaced atomically."""
        rows = self.read()[:epochs]
        if not rows:
            self.path.unlink(missing_ok=True)
            return
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text.getvalue()))

    def read(self) -> List[Dict[str, str]]:
        if not self.path.exists():
            return []
        with open(self.path, newline='') as f:
            return list(csv.DictReader(f))

    def append(self, row: Dict) -> None:
        new = not self.path.exists()
        with open(self.path, 'a', newline='') as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if self.writer is not None:
            for k, v in row.items():
                if k != 'epoch' and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, int(row['epoch']))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


CLASSIFICATION_PANELS = (('loss', ('train_loss', 'val_loss')), ('validation accuracy (%)', ('val_top1', 'val_top5')))


def plot_metrics(csv_path: Path, png_path: Path,
                 panels: Sequence[Tuple[str, Sequence[str]]] = CLASSIFICATION_PANELS) -> Optional[Path]:
    """One panel per ``(title, columns)`` of ``metrics.csv`` against epoch (None when it has no rows); columns
    absent from the file are skipped, empty cells (epochs without validation) left out."""
    with open(csv_path, newline='') as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    fig, axes = pyplot().subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, (title, columns) in zip(axes, panels):
        for key in (c for c in columns if c in rows[0]):
            points = [(int(r['epoch']), float(r[key])) for r in rows if r[key] not in ('', 'nan')]
            if points:
                ax.plot(*zip(*points), marker='o', label=key)
        ax.set(xlabel='epoch', title=title)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, png_path)
