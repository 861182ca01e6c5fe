"""Precision, memory format and compilation: what ``amp: auto`` and ``channels_last: auto`` resolve to, and
``torch.compile`` with a run's backend and mode.

On a CPU, bfloat16 autocast pays only where the CPU computes bf16 natively (AVX512-BF16 or AMX): elsewhere oneDNN
emulates it and a step runs about 9 × slower than float32. PyTorch says which (``mkldnn._is_mkldnn_bf16_supported``);
no CPU-name table is kept here. On CUDA, bfloat16 where the GPU supports it, else float16 with a loss scaler.
channels_last helps the convolutions of low-precision kernels and is left off in float32 on a CPU, where it made
the bridged blocks slower.
"""
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Dict, Optional

import torch
from torch import nn

from ..config import AUTO, Switch

__all__ = ['Precision', 'cpu_has_native_bf16', 'resolve_precision', 'compile_model']


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bfloat16 matrix work natively (AVX512-BF16 or AMX), as PyTorch's oneDNN reports."""
    probe = getattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', None)
    return bool(probe and probe())


@dataclass(frozen=True)
class Precision:
    """The resolved choice: autocast dtype (None: float32), memory format, and why."""
    dtype: Optional[torch.dtype]
    channels_last: bool
    reason: str

    @property
    def amp(self) -> bool:
        return self.dtype is not None

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self, device: torch.device) -> Callable[[], Any]:
        """A context factory: ``with precision.autocast(device)():``."""
        if self.dtype is None:
            return nullcontext
        return partial(torch.autocast, device_type=device.type, dtype=self.dtype)

    def describe(self) -> str:
        name = 'float32' if self.dtype is None else f'{str(self.dtype).split(".")[-1]} autocast'
        return f'{name}, {"channels_last" if self.channels_last else "NCHW"} ({self.reason})'

    def as_dict(self) -> Dict[str, Any]:
        return {'amp_dtype': None if self.dtype is None else str(self.dtype).split('.')[-1],
                'channels_last': self.channels_last, 'reason': self.reason}


def _auto_dtype(device: torch.device) -> tuple:
    if device.type == 'cuda':
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, 'auto: this GPU supports bfloat16'
        return torch.float16, 'auto: this GPU lacks bfloat16, float16 with a loss scaler'
    if device.type == 'cpu':
        if cpu_has_native_bf16():
            return torch.bfloat16, 'auto: this CPU has native bfloat16 (AVX512-BF16/AMX)'
        return None, 'auto: this CPU has no native bfloat16, where bf16 autocast is ~9x slower'
    return None, f'auto: no autocast on {device.type}'


def resolve_precision(amp: Switch, amp_dtype: str, channels_last: Switch, device: torch.device) -> Precision:
    """Turn the ``amp``/``amp_dtype``/``channels_last`` options into a :class:`Precision` for ``device``.

    Explicit choices are kept as given; ``'auto'`` follows the hardware (see the module docstring).
    """
    if amp == AUTO:
        dtype, reason = _auto_dtype(device)
    elif amp:
        dtype, reason = getattr(torch, amp_dtype), f'--amp with {amp_dtype}'
    else:
        dtype, reason = None, 'amp off'
    if channels_last == AUTO:
        layout = dtype is not None
        reason += '; channels_last auto: ' + ('on with autocast' if layout else 'off in float32')
    else:
        layout = bool(channels_last)
    return Precision(dtype, layout, reason)


def compile_model(model: nn.Module, cfg: Any) -> nn.Module:
    """``torch.compile(model)`` with ``cfg.compile_backend`` and ``cfg.compile_mode``, or ``model`` itself when
    ``cfg.compile`` is off."""
    if not cfg.compile:
        return model
    mode = None if cfg.compile_mode == 'default' else cfg.compile_mode
    return torch.compile(model, backend=cfg.compile_backend, mode=mode)
