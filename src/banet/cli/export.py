"""``banet export``: a model to ONNX or TorchScript (fused, dynamic batch), checked against PyTorch."""
import argparse

import torch

from ..errors import BanetError
from ..deploy.export import FORMATS, export_model
from ..deploy.predict import collect_files, load_images
from ._model_args import add_model_args, model_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'export', help='export to ONNX or TorchScript, checked against PyTorch',
        description='Export the fused inference form of a model (banet.fuse) with a dynamic batch axis, then run '
                    'the file (ONNX Runtime, or TorchScript loaded back) on random, image-like and any --images '
                    'inputs and compare with PyTorch; the output is written only if every max abs difference is '
                    'within --atol. ONNX needs pip install "banet[export]".')
    add_model_args(p)
    p.add_argument('--format', choices=FORMATS, default='onnx', help='onnx (default) or torchscript')
    p.add_argument('--output', required=True, help='file to write (replaced only by a checked export)')
    p.add_argument('--opset', type=int, default=18, help='ONNX opset, >= 17 (default 18)')
    p.add_argument('--atol', type=float, default=1e-4, help='largest allowed max abs difference (default 1e-4)')
    p.add_argument('--no-fuse', action='store_true', help='export the model as it is, without banet.fuse')
    p.add_argument('--images', nargs='+', default=None, metavar='IMAGE',
                   help='real images (files or folders) to add to the check, preprocessed as the model expects')
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model = model_from_args(args)
    real = None
    if args.images:
        read, tensors, skipped = load_images(collect_files(args.images), model)
        for f, why in skipped.items():
            print(f'skipped {f}: {why}')
        if not tensors:
            raise BanetError('none of --images could be read as an image')
        real = torch.stack(tensors)
    report = export_model(model, args.output, args.format, args.opset, not args.no_fuse, real, args.atol)
    runtime = 'ONNX Runtime' if args.format == 'onnx' else 'TorchScript'
    diffs = ', '.join(f'{k} {v:.2g}' for k, v in report['max_abs_diff'].items())
    print(f'wrote {report["output"]} ({report["bytes"]:,} bytes, {args.format}'
          f'{", opset " + str(args.opset) if args.format == "onnx" else ""}, '
          f'{"fused" if report["fused"] else "not fused"}, input (batch, {", ".join(map(str, report["input_size"]))})'
          f' with a dynamic batch)\n{runtime} vs PyTorch, max abs difference: {diffs} (atol {args.atol:g})')
    return 0
