"""Export to ONNX or TorchScript, checked against PyTorch before the file is kept.

The exported graph is the fused inference form (:func:`banet.fuse`: conv-BN pairs and every bridge folded) with a
dynamic batch axis. ONNX goes through PyTorch's ``torch.export``-based exporter (needs ``onnx`` and
``onnxscript``) and is checked with ONNX Runtime; TorchScript is traced and loaded back. Either way the outputs on
random and image-like inputs (and any real images given) must match the unfused PyTorch model within ``atol``,
else nothing is written: the file is built beside the output and only renamed over it once it passed.
"""
import copy
import json
import os
import warnings
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import nn

from ..errors import BanetError, CheckFailedError
from ..io import PathLike, atomic_write, label_names_of, model_data_config, norm_tensors
from ..models.fusion import fuse

__all__ = ['FORMATS', 'check_inputs', 'export_model', 'onnx_runner', 'torchscript_runner', 'compare_outputs']

FORMATS = ('onnx', 'torchscript')
INPUT_NAME, OUTPUT_NAME = 'input', 'logits'


def check_inputs(model: nn.Module, real: Optional[torch.Tensor] = None, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Named input batches for the parity check: N(0, 1) noise, random pixels normalised as the model expects
    (the range real images have), and ``real`` (preprocessed images) when given. Batch sizes differ from the
    export's, so the dynamic batch axis is exercised."""
    cfg = model_data_config(model)
    g = torch.Generator().manual_seed(seed)
    mean, std = norm_tensors(cfg)
    pixels = torch.randint(0, 256, (4, *cfg['input_size']), generator=g).float() / 255
    inputs = {'random': torch.randn(3, *cfg['input_size'], generator=g), 'image-like': (pixels - mean) / std}
    if real is not None:
        if real.ndim != 4 or real.shape[1] != cfg['input_size'][0]:
            raise BanetError(f'the real inputs have {real.shape[1] if real.ndim == 4 else "no"} channels; the model '
                             f'takes {cfg["input_size"][0]}: convert the images to its channels')
        inputs['real'] = real
    return inputs


def compare_outputs(reference: nn.Module, run, inputs: Dict[str, torch.Tensor], atol: float) -> Dict[str, float]:
    """Max abs difference between ``reference(x)`` and ``run(x)`` for each batch; raise if one exceeds ``atol``."""
    diffs = {}
    with torch.no_grad():
        for name, x in inputs.items():
            want = reference(x).float().numpy()
            got = np.asarray(run(x))
            if got.shape != want.shape:
                raise CheckFailedError(f'the exported model gives shape {got.shape} on the {name} inputs, PyTorch '
                                   f'{want.shape}; the file was not written')
            diffs[name] = float(np.abs(got - want).max())
    worst = max(diffs, key=diffs.get)
    if not diffs[worst] <= atol:
        raise CheckFailedError(
            f'the exported model differs from PyTorch by {diffs[worst]:.3g} (> --atol {atol:g}) on the {worst} '
            f'inputs ({", ".join(f"{k} {v:.2g}" for k, v in diffs.items())}); the file was not written. '
            'Try --no-fuse, or report the model.')
    return diffs


def onnx_runner(path: PathLike):
    """Run an ONNX file with ONNX Runtime on the CPU: a function from a tensor batch to the output array."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise BanetError('checking an ONNX export needs onnxruntime: pip install "banet[export]"') from e
    try:
        session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    except Exception as e:  # onnxruntime raises its own error types
        raise CheckFailedError(f'ONNX Runtime cannot load the exported model ({e}); the file was not written') from e
    return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]


def torchscript_runner(path: PathLike):
    """Load a TorchScript file back: a function from a tensor batch to the output array."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # torch.jit is deprecated in favour of torch.export
        module = torch.jit.load(str(path), map_location='cpu')
    return lambda x: module(x).numpy()


def _metadata(model: nn.Module) -> Dict[str, str]:
    cfg = model_data_config(model)
    meta = {'architecture': model.pretrained_cfg.get('architecture', ''),
            'data_config': json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()})}
    names = label_names_of(model)
    if names:
        meta['label_names'] = json.dumps(names)
    return meta


def _write_onnx(model: nn.Module, example: torch.Tensor, path: str, opset: int, meta: Dict[str, str]) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
    except ImportError as e:
        raise BanetError(f'ONNX export needs onnx, onnxscript and onnxruntime ({e}): '
                           'pip install "banet[export]"') from e
    batch = torch.export.Dim('batch', min=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            program = torch.onnx.export(
                model, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), verbose=False)
    except Exception as e:  # torch.export and the ONNX translation raise many error types
        raise RuntimeError(f'the ONNX export failed ({type(e).__name__}: {e}); try --no-fuse, or --format '
                           'torchscript') from e
    program.save(path)
    proto = onnx.load(path)
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def _write_torchscript(model: nn.Module, example: torch.Tensor, path: str, meta: Dict[str, str]) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # deprecation notices; the tracer's note on the constant channel check
            traced = torch.jit.trace(model, example)
    except Exception as e:
        raise RuntimeError(f'tracing the model failed ({type(e).__name__}: {e}); try --no-fuse, or --format '
                           'onnx') from e
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        torch.jit.save(traced, path, _extra_files=meta)


def export_model(
        model: nn.Module,
        output: PathLike,
        fmt: str = 'onnx',
        opset: int = 18,
        fused: bool = True,
        real_inputs: Optional[torch.Tensor] = None,
        atol: float = 1e-4,
) -> Dict[str, Any]:
    """Export ``model`` (left untouched) to ``output`` and check it; returns what was checked.

    Raises RuntimeError when the export fails or its outputs differ from PyTorch's by more than ``atol`` on any
    check batch (:func:`check_inputs`); ``output`` is then left as it was.
    """
    if fmt not in FORMATS:
        raise BanetError(f'unknown export format {fmt!r}: use one of {", ".join(FORMATS)}')
    if fmt == 'onnx' and opset < 17:
        raise BanetError(f'--opset {opset}: use 17 or newer')
    reference = copy.deepcopy(model).float().eval()
    net = fuse(copy.deepcopy(reference)) if fused else copy.deepcopy(reference)
    for p in net.parameters():
        p.requires_grad_(False)
    inputs = check_inputs(reference, real_inputs)
    example = inputs['random'][:2]
    meta = _metadata(reference)
    diffs: Dict[str, float] = {}

    def write(tmp: str) -> None:
        if fmt == 'onnx':
            _write_onnx(net, example, tmp, opset, meta)
            run = onnx_runner(tmp)
        else:
            _write_torchscript(net, example, tmp, meta)
            run = torchscript_runner(tmp)
        diffs.update(compare_outputs(reference, run, inputs, atol))

    path = atomic_write(output, write)
    return {'output': str(path), 'format': fmt, 'fused': fused, 'opset': opset if fmt == 'onnx' else None,
            'input_size': list(example.shape[1:]), 'max_abs_diff': diffs, 'atol': atol,
            'bytes': os.path.getsize(path)}

