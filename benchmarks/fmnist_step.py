"""Step cost of the Fashion-MNIST demo model at several batch sizes, eager or compiled, for sizing the demo recipe.

``banet benchmark`` builds models with 3 input channels and 1000 classes; this builds them as ``banet train``
does for Fashion-MNIST (1 channel, 10 classes, 28 px) and also reports the first step's time (compile + a
steady step). All configurations are built in this one process (compiled ones with static shapes, like the training
loop's first compile), then timed interleaved (A B C A B C ...). On a shared machine use ``--clock cpu --threads 1``:
the process's CPU time per step hardly depends on what else runs, and ratios between configurations carry over.

Emulate a CPU without AVX-512 (oneDNN and inductor honour the caps):

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 PYTHONPATH=src \\
        python benchmarks/fmnist_step.py -b 128 256 --compile --mode train infer --threads 2 --output out.json
    ... --clock cpu --threads 1 -b 64 128 256      # per-image cost ratios on a busy machine
"""
import argparse
import json
import os
import statistics
import time

import timm
import torch

import banet  # noqa: F401  (registers the models)
from banet.measure.benchmark import BenchConfig, build_step, machine_info


def build(model_name: str, batch: int, mode: str, compile_: bool, channels_last: bool):
    """A step callable of a fresh 1-channel, 10-class model (compiled with static shapes when ``compile_``)."""
    torch.manual_seed(0)
    model = timm.create_model(model_name, num_classes=10, in_chans=1)
    cfg = BenchConfig(mode=mode, batch_size=batch, img_size=28, channels_last=channels_last, compile=compile_,
                      warmup=0, num_classes=10)
    orig = torch.compile
    torch.compile = lambda m, **kw: orig(m, dynamic=False, **kw)  # static shapes, like the loop's first compile
    try:
        return build_step(model, cfg)
    finally:
        torch.compile = orig


def measure(configs, repeats: int, iters: int, clock) -> list:
    """Build and warm every configuration (timing its first step: compile + one step), then time them
    interleaved, ``repeats`` rounds of ``iters`` steps each."""
    torch._dynamo.config.cache_size_limit = 64
    steps, rows = [], []
    for model_name, batch, mode, compile_, cl in configs:
        step = build(model_name, batch, mode, compile_, cl)
        t0, c0 = time.perf_counter(), clock()
        step()
        first_wall, first_clock = time.perf_counter() - t0, clock() - c0
        step()  # one more untimed step
        steps.append(step)
        rows.append({'model': model_name, 'batch_size': batch, 'mode': mode, 'compile': compile_,
                     'channels_last': cl, 'first_step_wall_s': first_wall, 'first_step_clock_s': first_clock,
                     'times_s': []})
        print(f'built {model_name} {mode} b{batch} compile={compile_} cl={cl}: first step {first_wall:.1f} s wall',
              flush=True)
    for _ in range(repeats):
        for step, row in zip(steps, rows):
            c0 = clock()
            for _ in range(iters):
                step()
            row['times_s'].append((clock() - c0) / iters)
    for row in rows:
        t = row['times_s']
        med = statistics.median(t)
        row.update({'median_ms': med * 1e3, 'min_ms': min(t) * 1e3, 'max_ms': max(t) * 1e3,
                    'img_per_s': row['batch_size'] / med, 'min_ms_per_img': min(t) * 1e3 / row['batch_size'],
                    'median_ms_per_img': med * 1e3 / row['batch_size'], 'repeats': repeats, 'iters': iters})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', default=['ba_resnet20_cifar'])
    p.add_argument('-b', '--batch-sizes', type=int, nargs='+', default=[128])
    p.add_argument('--mode', nargs='+', choices=('train', 'infer'), default=['train'])
    p.add_argument('--compile', action='store_true', help='measure compiled (inductor) steps')
    p.add_argument('--eager', action='store_true', help='also measure eager steps (default when not --compile)')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--iters', type=int, default=3)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--clock', choices=('wall', 'cpu'), default='wall',
                   help='wall: perf_counter; cpu: this process\'s CPU time (robust to other processes on a shared '
                        'machine when --threads 1; with more threads it includes OpenMP spin-waiting)')
    p.add_argument('--output', default=None, help='JSON file for the results')
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = ([False] if args.eager or not args.compile else []) + ([True] if args.compile else [])
    configs = [(m, b, mode, c, args.channels_last) for m in args.models for mode in args.mode
               for c in variants for b in args.batch_sizes]
    clock = time.perf_counter if args.clock == 'wall' else time.process_time
    rows = measure(configs, args.repeats, args.iters, clock)
    for r in rows:
        print(f"{r['model']} {r['mode']} b{r['batch_size']} compile={r['compile']} cl={r['channels_last']}: "
              f"{r['median_ms']:.1f} ms/step ({r['min_ms']:.1f}-{r['max_ms']:.1f}), {r['img_per_s']:.0f} img/s, "
              f"{r['median_ms_per_img']:.3f} ms/img (min {r['min_ms_per_img']:.3f}), "
              f"first step {r['first_step_wall_s']:.1f} s", flush=True)
    env = {k: os.environ.get(k) for k in ('ONEDNN_MAX_CPU_ISA', 'ATEN_CPU_CAPABILITY')}
    report = {'clock': args.clock, 'machine': machine_info('cpu'), 'env': env, 'cpu_capability': torch.backends.cpu.get_cpu_capability(),
              'results': rows}
    if args.output:
        with open(args.output, 'w') as f:
            json.dump(report, f, indent=2)
        print(f'wrote {args.output}')


if __name__ == '__main__':
    main()
