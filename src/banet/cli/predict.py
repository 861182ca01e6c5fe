"""``banet predict``: top-k classes of image files and folders with a saved model."""
import argparse
import json
import sys

import torch

from ..config import parse_switch
from ..deploy.predict import predict_files
from ..errors import BanetError
from ..io import label_names_of
from ..runs.precision import resolve_precision
from ._options import typed
from ._model_args import add_model_args, model_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'predict', help='top-k classes of images with a checkpoint',
        description='Classify image files (folders: every file under them) in batches, with the preprocessing '
                    'the model\'s config names (size, crop, mean/std; grayscale for 1-channel models) and the class '
                    'names its checkpoint carries. Files that are not readable images are reported and skipped.')
    p.add_argument('inputs', nargs='+', metavar='IMAGE|FOLDER', help='image files and/or folders')
    add_model_args(p)
    p.add_argument('--top-k', type=int, default=5, help='classes per image (default 5)')
    p.add_argument('-b', '--batch-size', type=int, default=32, help='images per forward pass (default 32)')
    p.add_argument('--format', choices=('table', 'json'), default='table', help='output format (default table)')
    p.add_argument('--amp', nargs='?', const=True, default=False, type=typed(parse_switch, 'switch'),
                   metavar='auto|true|false',
                   help='bfloat16 autocast (auto: only where the hardware runs it natively, as banet train decides)')
    p.set_defaults(run=run)


def _table(results) -> str:
    width = max(len('file'), *(len(r['file']) for r in results))
    k = max(len(r['top_k']) for r in results)
    lines = [f'{"file":<{width}}  ' + '  '.join(f'{f"top-{i + 1}":<22}' for i in range(k)).rstrip()]
    for r in results:
        cells = [f'{c["label"][:15]:<15} {c["prob"]:6.1%}' for c in r['top_k']]
        lines.append(f'{r["file"]:<{width}}  ' + '  '.join(f'{c:<22}' for c in cells).rstrip())
    return '\n'.join(lines)


def run(args: argparse.Namespace) -> int:
    model = model_from_args(args)
    precision = resolve_precision(args.amp, 'bfloat16', False, torch.device('cpu'))
    out = predict_files(model, args.inputs, args.top_k, args.batch_size,
                        autocast=precision.autocast(torch.device('cpu')))
    for f, why in out.skipped.items():
        print(f'skipped {f}: {why}', file=sys.stderr)
    if not out.results:
        raise BanetError(f'no readable image among {len(out.skipped)} file(s)')
    if args.format == 'json':
        print(json.dumps({'model': model.pretrained_cfg.get('architecture'),
                          'labels': 'names' if label_names_of(model) else 'indices',
                          'results': out.results, 'skipped': out.skipped}, indent=2))
    else:
        print(_table(out.results))
    return 0
