"""Per-epoch metrics: a CSV file, optional TensorBoard, and a PNG of the curves."""
import csv
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import BanetError
from ..io.figures import pyplot, save_figure

__all__ = ['MetricsLog', 'plot_metrics']


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
        """Keep the rows of the first ``epochs`` epochs (a resume drops rows written after its checkpoint)."""
        rows = self.read()[:epochs]
        if self.path.exists():
            self.path.unlink()
        for row in rows:
            self.append(row)

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


def plot_metrics(csv_path: Path, png_path: Path) -> Optional[Path]:
    """Loss and accuracy against epoch from ``metrics.csv`` (None when it has no rows)."""
    with open(csv_path, newline='') as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    epoch = [int(r['epoch']) for r in rows]
    fig, (ax_loss, ax_acc) = pyplot().subplots(1, 2, figsize=(10, 4))
    for key, label in (('train_loss', 'train'), ('val_loss', 'validation')):
        ax_loss.plot(epoch, [float(r[key]) for r in rows], marker='o', label=label)
    ax_loss.set(xlabel='epoch', ylabel='loss', title='loss')
    ax_loss.legend()
    for key in ('val_top1', 'val_top5'):
        ax_acc.plot(epoch, [float(r[key]) for r in rows], marker='o', label=key[4:])
    ax_acc.set(xlabel='epoch', ylabel='accuracy (%)', title='validation accuracy')
    ax_acc.legend()
    fig.tight_layout()
    return save_figure(fig, png_path)
