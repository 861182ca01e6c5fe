"""banet's own error types: user errors whose one-line message names the fix."""

__all__ = ['BanetError', 'MissingFileError', 'CheckFailedError']


class BanetError(ValueError):
    """Bad input that the user can fix; the ``banet`` command prints its message on one line (exit status 2).

    A ``ValueError`` subclass, so code that caught banet's ValueErrors keeps working. Errors of any other type
    (PyTorch's shape, dtype or memory errors, bugs) are not caught by the command line and keep their traceback.
    """


class MissingFileError(BanetError, FileNotFoundError):
    """A file or folder the user named (or that a named folder should hold) does not exist."""


class CheckFailedError(BanetError, RuntimeError):
    """A result failed banet's own check (e.g. an export that does not match PyTorch); nothing was written."""
