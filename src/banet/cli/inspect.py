"""``banet inspect``: bridge gate statistics, BAv2 selection weights and Grad-CAM of a model on images."""
import argparse
import sys
from pathlib import Path

import torch

from ..deploy.explain import grad_cam, plot_alpha, plot_gates, plot_grad_cam, record_bridges
from ..deploy.predict import collect_files, load_images
from ..errors import BanetError
from ..io import label_names_of, model_data_config, norm_tensors, save_json_file
from ._model_args import add_model_args, model_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'inspect', help='what the bridges do on some images: gate stats, BAv2 alpha, Grad-CAM (JSON + PNG)',
        description='Run a bridged model on images and write, into --output-dir: bridges.json (per block the '
                    'gate\'s mean/std/min/max over channels and images, and BAv2\'s selection weights alpha), '
                    'gates.png (gate statistics by depth), alpha.png (alpha per stage; BAv2 only) and gradcam.png '
                    '(Grad-CAM of the predicted class over each image).')
    p.add_argument('inputs', nargs='+', metavar='IMAGE|FOLDER', help='image files and/or folders')
    add_model_args(p)
    p.add_argument('--output-dir', default='inspect', help='folder for the JSON and PNG files (default ./inspect)')
    p.add_argument('--max-images', type=int, default=8, help='use at most this many images (default 8)')
    p.add_argument('--layer', default=None,
                   help='module for Grad-CAM (default: the last feature stage, e.g. layer4)')
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.max_images < 1:
        raise BanetError(f'--max-images must be >= 1, got {args.max_images}')
    model = model_from_args(args)
    files = collect_files(args.inputs)
    read, tensors, skipped = load_images(files, model)
    for f, why in skipped.items():
        print(f'skipped {f}: {why}', file=sys.stderr)
    if not tensors:
        raise BanetError(f'no readable image among {len(files)} file(s)')
    if len(tensors) > args.max_images:
        print(f'using the first {args.max_images} of {len(tensors)} images (--max-images)', file=sys.stderr)
        read, tensors = read[:args.max_images], tensors[:args.max_images]
    x = torch.stack(tensors)
    _, records = record_bridges(model, x)
    cam = grad_cam(model, x, layer=args.layer)
    names = label_names_of(model)
    labels = [names[c] if names else str(c) for c in cam.classes.tolist()]
    out = Path(args.output_dir)
    cfg = model_data_config(model)
    mean, std = norm_tensors(cfg)
    display = x * std + mean
    name = model.pretrained_cfg.get('architecture', '')
    paths = [save_json_file({'model': name, 'images': [str(f) for f in read], 'bridges': records,
                             'predictions': [{'file': str(f), 'label': lab, 'prob': p} for f, lab, p in
                                             zip(read, labels, cam.probs.tolist())]}, out / 'bridges.json'),
             plot_gates(records, out / 'gates.png', f'{name}: bridge gates by depth ({len(read)} image(s))'),
             plot_alpha(records, out / 'alpha.png', f'{name}: BAv2 selection weight α per bridged conv output'),
             plot_grad_cam(display, cam, labels, out / 'gradcam.png', [f.stem[:12] for f in read])]
    print(f'{"block":<12} {"gate mean":>9} {"std":>6} {"min":>6} {"max":>6}  alpha')
    for r in records:
        alpha = ' '.join(f'{a:+.2f}' for a in r['alpha']) if r['alpha'] else '-'
        print(f'{r["block"]:<12} {r["mean"]:9.3f} {r["std"]:6.3f} {r["min"]:6.3f} {r["max"]:6.3f}  {alpha}')
    print('wrote ' + ', '.join(str(p) for p in paths if p))
    return 0
