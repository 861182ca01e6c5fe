"""Fast bridge attention vs the straightforward reference (tests/reference_bridge.py), same weights.

Measures (1) the 16 bridges of a BAv2 ResNet-50 alone, forward + backward at their real shapes, and (2) whole
BAv2 ResNet-50 training steps of banet's blocks vs the straightforward blocks (mean pooling, a plain product and
add, one projection per branch, as the official code). Interleaved and repeated like ``banet benchmark``.

    python benchmarks/bridge_impl.py --batch-size 16 --img-size 224 --output docs/benchmarks
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests'))
from reference_bridge import as_reference_model  # noqa: E402

import banet  # noqa: E402
from banet.measure.benchmark import BenchConfig, build_step, machine_info, time_interleaved  # noqa: E402


def bridges_step(bridges, batch):
    inputs = [[torch.randn(batch, c, requires_grad=True) for c in b.in_channels] for b in bridges]

    def step():
        loss = sum(b(x).sum() for b, x in zip(bridges, inputs))
        loss.backward()
    return step


def summary(times):
    return {k: {'median_ms': statistics.median(v) * 1e3, 'min_ms': min(v) * 1e3, 'max_ms': max(v) * 1e3}
            for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', default='ba_resnet50')
    p.add_argument('-b', '--batch-size', type=int, default=16)
    p.add_argument('--img-size', type=int, default=224)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--layer-repeats', type=int, default=30)
    p.add_argument('--output', default=None)
    args = p.parse_args()

    torch.manual_seed(0)
    fast = timm.create_model(args.model).train()
    ref = as_reference_model(fast)
    layer_cfg = BenchConfig(batch_size=args.batch_size, warmup=5, repeats=args.layer_repeats, iters=10)
    fast_bridges = [m for m in fast.modules() if isinstance(m, banet.BridgeAttention)]
    ref_bridges = [m for m in ref.modules() if isinstance(m, banet.BridgeAttention)]
    layer = summary(time_interleaved({
        'fast': bridges_step(fast_bridges, args.batch_size),
        'reference': bridges_step(ref_bridges, args.batch_size)}, layer_cfg))

    step_cfg = BenchConfig(batch_size=args.batch_size, img_size=args.img_size, warmup=2, repeats=args.repeats,
                           iters=1)
    step = summary(time_interleaved({'fast': build_step(fast, step_cfg), 'reference': build_step(ref, step_cfg)},
                                    step_cfg))
    report = {'command': ' '.join(['python'] + sys.argv), 'machine': machine_info('cpu'),
              'bridges_fwd_bwd': layer, 'train_step': step,
              'speedup_bridges': layer['reference']['median_ms'] / layer['fast']['median_ms'],
              'speedup_step': step['reference']['median_ms'] / step['fast']['median_ms']}
    print(json.dumps(report, indent=2))
    if args.output:
        Path(args.output).mkdir(parents=True, exist_ok=True)
        (Path(args.output) / 'bridge_impl.json').write_text(json.dumps(report, indent=2))


if __name__ == '__main__':
    main()
