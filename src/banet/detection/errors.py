"""The error for unusable data files (to become a subclass of banet.errors.BanetError)."""

__all__ = ['DataError']

_WORKER_TRACEBACK = '\nOriginal Traceback'


class DataError(ValueError):
    """A data file is missing or unreadable; the message is one line naming the file.

    Raised in a DataLoader worker, PyTorch re-raises it in the main process with the worker's traceback as the
    message; the constructor keeps only the original one-line message, so the user still reads one line.
    """

    def __init__(self, message: str) -> None:
        if _WORKER_TRACEBACK in message:
            message = message.rstrip().splitlines()[-1].split('DataError: ', 1)[-1]
        super().__init__(message)
