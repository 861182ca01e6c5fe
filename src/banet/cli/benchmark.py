"""``banet benchmark``: interleaved, repeated speed and memory measurements."""
import argparse

from ..config import parse_switch
from ..measure.benchmark import BenchConfig, markdown, run_benchmark, write_report
from ..train.options import COMPILE_MODES
from ._options import typed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'benchmark', help='measure images/s, latency and memory of models, interleaved',
        description='Time inference or training steps of timm models, interleaved (A B A B …) after a warm-up, '
                    'and report median and min-max ms/step, images/s, the ratio to a reference model and memory '
                    '(CUDA peak; tensors saved for backward). Writes JSON, markdown and a PNG bar chart.')
    p.add_argument('models', nargs='+', help='timm model names, e.g. resnet50 seresnet50 ba_resnet50')
    p.add_argument('--reference', default=None, help='ratios are to this model (default: the first)')
    p.add_argument('--mode', choices=('train', 'infer'), default='train')
    p.add_argument('-b', '--batch-size', type=int, default=16)
    p.add_argument('--img-size', type=int, default=224)
    p.add_argument('--dtype', choices=('float32', 'bfloat16', 'float16', 'auto'), default='float32',
                   help='autocast dtype (float32: no autocast; auto: what banet train\'s amp: auto picks here)')
    p.add_argument('--channels-last', nargs='?', const=True, default=False, type=typed(parse_switch, 'switch'),
                   metavar='auto|true|false', help='channels_last memory format (auto: with autocast only)')
    p.add_argument('--compile', action='store_true',
                   help='torch.compile each model (its first call, the compilation, is reported apart)')
    p.add_argument('--compile-mode', default='default', choices=COMPILE_MODES, help='torch.compile mode')
    p.add_argument('--fuse', action='store_true', help='inference: fold conv-BN pairs and bridges (banet.fuse)')
    p.add_argument('--device', default='cpu', help='cpu or cuda[:N]')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps per model first')
    p.add_argument('--repeats', type=int, default=5, help='interleaved timed rounds')
    p.add_argument('--iters', type=int, default=2, help='steps per model per round')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s choice)')
    p.add_argument('--output', default=None, help='directory for NAME.json/.md/.png (default: print only)')
    p.add_argument('--name', default='benchmark', help='file stem of the outputs')
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = BenchConfig(
        mode=args.mode, batch_size=args.batch_size, img_size=args.img_size, dtype=args.dtype,
        channels_last=args.channels_last, compile=args.compile, compile_mode=args.compile_mode, fuse=args.fuse,
        device=args.device, warmup=args.warmup, repeats=args.repeats, iters=args.iters, reference=args.reference)
    report = run_benchmark(args.models, cfg)
    print(markdown(report))
    if args.output:
        for path in write_report(report, args.output, args.name):
            print(f'wrote {path}')
    return 0
