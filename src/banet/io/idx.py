"""Reading IDX files (the MNIST / Fashion-MNIST format), gzipped or not."""
import gzip
from pathlib import Path

import numpy as np

from ..errors import BanetError, MissingFileError
from .files import PathLike

__all__ = ['read_idx']

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}


def read_idx(path: PathLike) -> np.ndarray:
    """The array of an IDX file: magic ``0 0 TYPE NDIM``, NDIM big-endian sizes, then the data."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f'cannot read IDX file {path}: it does not exist')
    try:
        with (gzip.open(path, 'rb') if path.suffix == '.gz' else open(path, 'rb')) as f:
            data = f.read()
    except OSError as e:
        raise BanetError(f'cannot read IDX file {path}: {e}') from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise BanetError(f'{path} is not an IDX file (bad magic number)')
    ndim = data[3]
    shape = tuple(int(n) for n in np.frombuffer(data, '>u4', ndim, 4))
    dtype = np.dtype(_DTYPES[data[2]])
    if len(data) != 4 + 4 * ndim + dtype.itemsize * int(np.prod(shape)):
        raise BanetError(f'{path} is truncated or padded: its header says {shape}')
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape)
