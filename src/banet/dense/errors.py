"""The error for unusable COCO-layout data files: one line naming the file (a BanetError)."""
from ..errors import BanetError

__all__ = ['DataError']


class DataError(BanetError):
    """A data file is missing or unreadable; the message is one line naming the file, also from a loader process."""
