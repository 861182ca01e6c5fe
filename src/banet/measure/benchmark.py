"""Paired, repeated speed and memory measurements of timm models (inference and training steps).

Models are measured interleaved (A B C A B C …) after a warm-up, so slow drifts of a shared machine hit all of
them alike; each repeat times ``iters`` steps and the report gives the median and min–max per step, images/s and
the ratio of each model's median to the reference model's.
"""
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import timm
import torch
from torch import nn

from ..errors import BanetError
from ..io import atomic_write, check_model_names, pyplot, save_figure, save_json_file
from ..models.fusion import fuse as fuse_model
from ..runs.precision import Precision, cpu_has_native_bf16, resolve_precision

__all__ = ['BenchConfig', 'precision_of', 'build_step', 'first_call_seconds', 'time_interleaved', 'run_benchmark',
           'write_report', 'machine_info']

_DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}


@dataclass
class BenchConfig:
    """What to measure; every model in a run shares it."""
    mode: str = 'train'                 # 'train' (forward + backward + SGD step) or 'infer'
    batch_size: int = 16
    img_size: int = 224
    dtype: str = 'float32'              # autocast dtype; float32 = no autocast; auto = what train's amp: auto picks
    channels_last: Union[bool, str] = False  # or 'auto': with autocast only
    compile: bool = False
    compile_mode: str = 'default'       # torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune
    fuse: bool = False                  # inference only: banet.fuse (conv-BN and bridges folded)
    device: str = 'cpu'
    warmup: int = 2
    repeats: int = 5
    iters: int = 2                      # steps per timed repeat
    num_classes: int = 1000
    reference: Optional[str] = None     # ratios are to this model (default: the first)
    extra: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ('train', 'infer'):
            raise BanetError(f"mode must be 'train' or 'infer', got {self.mode!r}")
        if self.dtype not in (*_DTYPES, 'auto'):
            raise BanetError(f'dtype must be auto or one of {sorted(_DTYPES)}, got {self.dtype!r}')
        if self.fuse and self.mode == 'train':
            raise BanetError('--fuse folds norms for inference: use it with --mode infer')
        if self.device.startswith('cuda') and not torch.cuda.is_available():
            raise BanetError('CUDA is not available on this machine: use --device cpu')
        if min(self.batch_size, self.repeats, self.iters) < 1 or self.warmup < 0:
            raise BanetError('batch size, repeats and iters must be >= 1 and warmup >= 0')
        if self.mode == 'train' and self.batch_size < 2:
            raise BanetError('training steps need a batch size >= 2 (batch norm)')


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def precision_of(cfg: BenchConfig) -> Precision:
    """The autocast dtype and memory format a benchmark runs with: train's own decision (``auto`` included)."""
    amp = 'auto' if cfg.dtype == 'auto' else cfg.dtype != 'float32'
    return resolve_precision(amp, cfg.dtype if cfg.dtype in ('bfloat16', 'float16') else 'bfloat16',
                             cfg.channels_last, torch.device(cfg.device))


def build_step(model: nn.Module, cfg: BenchConfig) -> Callable[[], None]:
    """One inference or training step of ``model`` on a fixed random batch, as configured."""
    device = torch.device(cfg.device)
    precision = precision_of(cfg)
    memory_format = torch.channels_last if precision.channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)
    if cfg.fuse:
        model = fuse_model(model)
    model.train(cfg.mode == 'train')
    run = model
    if cfg.compile:
        run = torch.compile(model, mode=None if cfg.compile_mode == 'default' else cfg.compile_mode)
    x = torch.randn(cfg.batch_size, model.in_chans, cfg.img_size, cfg.img_size, device=device)
    x = x.contiguous(memory_format=memory_format)
    autocast = precision.autocast(device)
    if cfg.mode == 'infer':
        def step() -> None:
            with torch.inference_mode(), autocast():
                run(x)
        return step
    target = torch.randint(0, getattr(model, 'num_classes', cfg.num_classes), (cfg.batch_size,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = nn.functional.cross_entropy(run(x), target)
        loss.backward()
        optimizer.step()
    return step


def first_call_seconds(steps: Dict[str, Callable[[], None]], device: str) -> Dict[str, float]:
    """Time one first call of each step: with ``torch.compile`` this is the compilation, reported apart."""
    first = {}
    for name, step in steps.items():
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        first[name] = time.perf_counter() - start
    return first


def time_interleaved(steps: Dict[str, Callable[[], None]], cfg: BenchConfig) -> Dict[str, List[float]]:
    """Seconds per step of each callable: ``warmup`` untimed calls each, then ``repeats`` interleaved rounds."""
    for step in steps.values():
        for _ in range(cfg.warmup):
            step()
    _sync(cfg.device)
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(cfg.repeats):
        for name, step in steps.items():
            _sync(cfg.device)
            start = time.perf_counter()
            for _ in range(cfg.iters):
                step()
            _sync(cfg.device)
            times[name].append((time.perf_counter() - start) / cfg.iters)
    return times


def _memory_mib(step: Callable[[], None], cfg: BenchConfig) -> Dict[str, Optional[float]]:
    """CUDA: peak allocated during one step. Training on any device: bytes of tensors saved for backward."""
    out: Dict[str, Optional[float]] = {'peak_mem_mib': None, 'saved_mib': None}
    if cfg.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        out['peak_mem_mib'] = torch.cuda.max_memory_allocated() / 2 ** 20
    if cfg.mode == 'train' and not cfg.compile:  # compiled graphs save tensors outside these hooks
        seen: Dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            step()
        out['saved_mib'] = sum(seen.values()) / 2 ** 20
    return out


def machine_info(device: str) -> Dict[str, str]:
    """Where the numbers came from."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists('/proc/cpuinfo'):
        names = [ln.split(':', 1)[1].strip() for ln in open('/proc/cpuinfo') if ln.startswith('model name')]
        cpu = names[0] if names else cpu
    flags = open('/proc/cpuinfo').read() if os.path.exists('/proc/cpuinfo') else ''
    isa = [f for f in ('amx_bf16', 'avx512_bf16', 'avx512f', 'avx2') if f' {f}' in flags]
    info = {'cpu': cpu, 'cpu_flags': ' '.join(isa) or 'unknown', 'cpu_capability': torch.backends.cpu.get_cpu_capability(),
            'native_bf16': str(cpu_has_native_bf16()), 'cpu_count': str(os.cpu_count()),
            'torch_threads': str(torch.get_num_threads()),
            'torch': torch.__version__, 'timm': timm.__version__, 'python': platform.python_version()}
    if device.startswith('cuda'):
        info['gpu'] = torch.cuda.get_device_name(torch.device(device))
    return info


def run_benchmark(models: Sequence[str], cfg: BenchConfig,
                  factories: Optional[Dict[str, Callable[[], nn.Module]]] = None) -> Dict:
    """Measure ``models`` (timm names, or keys of ``factories`` building custom variants) under ``cfg``."""
    factories = dict(factories or {})
    check_model_names([n for n in models if n not in factories])
    if len(set(models)) != len(models):
        raise BanetError(f'each model once, got {list(models)}')
    reference = cfg.reference or models[0]
    if reference not in models:
        raise BanetError(f'reference model {reference!r} is not among the measured models {list(models)}')
    steps = {}
    for name in models:
        torch.manual_seed(0)
        model = factories[name]() if name in factories else timm.create_model(name, num_classes=cfg.num_classes)
        steps[name] = build_step(model, cfg)
    first = first_call_seconds(steps, cfg.device)
    times = time_interleaved(steps, cfg)
    ref_median = statistics.median(times[reference])
    rows = []
    for name in models:
        median = statistics.median(times[name])
        rows.append({
            'model': name, 'median_ms': median * 1e3, 'min_ms': min(times[name]) * 1e3,
            'max_ms': max(times[name]) * 1e3, 'img_per_s': cfg.batch_size / median,
            'ratio': median / ref_median, 'first_call_s': first[name], **_memory_mib(steps[name], cfg),
        })
    precision = precision_of(cfg)
    return {'config': asdict(cfg) | {'reference': reference, 'precision': precision.describe()},
            'machine': machine_info(cfg.device), 'results': rows}


def markdown(report: Dict) -> str:
    """A markdown table of a :func:`run_benchmark` report."""
    c = report['config']
    compiled = f"compile={c['compile']}" + (f" ({c['compile_mode']})" if c['compile'] else '')
    head = (f"{c['mode']} step, batch {c['batch_size']}, {c['img_size']} px, {c['precision']}, {compiled}, "
            f"fuse={c['fuse']}, device {c['device']} ({report['machine']['cpu']}, {report['machine']['cpu_flags']}); "
            f"{c['repeats']} interleaved repeats × {c['iters']} steps after {c['warmup']} warm-up")
    lines = [head, '', f"| model | median ms/step | min–max ms | img/s | × {c['reference']} | first call s | "
                       "saved MiB | peak MiB |", '|---|---:|---:|---:|---:|---:|---:|---:|']
    fmt = lambda v: '–' if v is None else f'{v:.0f}'  # noqa: E731
    for r in report['results']:
        lines.append(f"| `{r['model']}` | {r['median_ms']:.1f} | {r['min_ms']:.1f}–{r['max_ms']:.1f} | "
                     f"{r['img_per_s']:.1f} | {r['ratio']:.3f} | {r['first_call_s']:.2f} | {fmt(r['saved_mib'])} | "
                     f"{fmt(r['peak_mem_mib'])} |")
    return '\n'.join(lines)


def write_report(report: Dict, out_dir: Path, name: str = 'benchmark') -> List[Path]:
    """Write ``name``.json, ``name``.md and a ``name``.png bar chart (median with min–max) into ``out_dir``."""
    plt = pyplot()
    out_dir = Path(out_dir)
    paths = [out_dir / f'{name}.json', out_dir / f'{name}.md', out_dir / f'{name}.png']
    save_json_file(report, paths[0])
    atomic_write(paths[1], lambda tmp: Path(tmp).write_text(markdown(report) + '\n'))
    rows = report['results']
    med = [r['median_ms'] for r in rows]
    err = [[m - r['min_ms'] for m, r in zip(med, rows)], [r['max_ms'] - m for m, r in zip(med, rows)]]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(rows), 3.6))
    ax.bar([r['model'] for r in rows], med, yerr=err, capsize=4, color='tab:blue')
    ax.set_ylabel('ms per step (median, min–max)')
    ax.set_title(f"{report['config']['mode']} · batch {report['config']['batch_size']} · "
                 f"{report['config']['img_size']} px · {report['config']['device']}", fontsize=9)
    ax.tick_params(axis='x', labelrotation=30, labelsize=8)
    fig.tight_layout()
    save_figure(fig, paths[2])
    return paths
