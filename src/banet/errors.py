"""banet's own error types: user errors whose one-line message names the fix."""

__all__ = ['BanetError', 'MissingFileError', 'CheckFailedError']


_WORKER_TRACEBACK = '\nOriginal Traceback'


class BanetError(ValueError):
    """Bad input that the user can fix; the ``banet`` command prints its message on one line (exit status 2).

    A ``ValueError`` subclass, so code that caught banet's ValueErrors keeps working. Errors of any other type
    (PyTorch's shape, dtype or memory errors, bugs) are not caught by the command line and keep their traceback.
    Raised in a DataLoader worker, PyTorch re-creates the error in the main process with the worker's traceback
    as its message; the constructor keeps the original one line.
    """

    def __init__(self, message: str = '') -> None:
        if _WORKER_TRACEBACK in message:
            message = message.rstrip().splitlines()[-1].split(': ', 1)[-1]
        super().__init__(message)


class MissingFileError(BanetError, FileNotFoundError):
    """A file or folder the user named (or that a named folder should hold) does not exist."""


class CheckFailedError(BanetError, RuntimeError):
    """A result failed banet's own check (e.g. an export that does not match PyTorch); nothing was written."""
