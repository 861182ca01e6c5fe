"""``banet profile``: parameters and MACs of banet models and timm baselines."""
import argparse
import json

import timm

from ..io import check_model_names
from ..models import MODEL_MODULES
from ..measure.profile import profile_model, profile_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'profile', help='count parameters and MACs',
        description='Count parameters and MACs (torch.utils.flop_counter: conv and matmul FLOPs / 2) of timm '
                    'models on one image. Without MODELS: every banet model at its default input size.')
    p.add_argument('models', nargs='*', help='model names, e.g. ba_resnet50 resnet50 seresnet50')
    p.add_argument('--img-size', type=int, default=None, help='square input size (default: each model\'s cfg)')
    p.add_argument('--num-classes', type=int, default=None, help='classifier size (default: each model\'s cfg)')
    p.add_argument('--format', choices=('markdown', 'json'), default='markdown')
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    names = args.models or timm.list_models(module=list(MODEL_MODULES))
    check_model_names(names)
    extra = {} if args.num_classes is None else {'num_classes': args.num_classes}
    rows = [profile_model(n, args.img_size, **extra) for n in names]
    print(json.dumps(rows, indent=2) if args.format == 'json' else profile_table(rows))
    return 0
