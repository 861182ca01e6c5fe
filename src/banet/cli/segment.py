"""``banet segment train|validate|predict``: torchvision segmenters over BA (or any timm) backbones on COCO data."""
import argparse
import json
import os

from ._options import add_config_options, config_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'segment', help='semantic segmentation: train, validate (mIoU) and predict with BA backbones',
        description='DeepLabV3 and FCN (torchvision) over a dilated timm backbone, on semantic masks made from data '
                    'in the COCO layout (DIR/annotations/instances_SPLIT.json, DIR/SPLIT/). See docs/detection.md.')
    actions = p.add_subparsers(dest='action', required=True, metavar='ACTION')
    from ..segmentation.options import SegmentTrainConfig, SegmentValidateConfig
    t = actions.add_parser('train', help='train a segmenter (run folder with best/, last/, metrics.csv, exact resume)')
    add_config_options(t, SegmentTrainConfig)
    t.set_defaults(run=_train, parser=t, cls=SegmentTrainConfig)
    v = actions.add_parser('validate', help='mean IoU, pixel accuracy and per-class IoU of a checkpoint, as JSON')
    add_config_options(v, SegmentValidateConfig)
    v.set_defaults(run=_validate, parser=v, cls=SegmentValidateConfig)
    d = actions.add_parser('predict', help='draw the class map of a checkpoint over images (PNGs)')
    d.add_argument('inputs', nargs='+', metavar='IMAGE|FOLDER', help='image files and/or folders')
    d.add_argument('--checkpoint', required=True, help='a banet segment train run folder (best/ is used)')
    d.add_argument('--output-dir', default='segmentations', help='folder for the drawn PNGs (default ./segmentations)')
    d.add_argument('--alpha', type=float, default=0.5, help='opacity of the class colours over the image')
    d.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    d.add_argument('--trust-pickle', action='store_true', help='allow pickle weights (trusted files only)')
    d.set_defaults(run=_predict)


def _train(args: argparse.Namespace) -> int:
    from ..segmentation.trainer import train_segmenter
    train_segmenter(config_from_args(args.cls, args))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from ..segmentation.validate import validate_segmenter
    result = validate_segmenter(config_from_args(args.cls, args))
    if os.environ.get('RANK', '0') == '0':  # under torchrun every process scores; the first one reports
        print(json.dumps(result, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    import torch
    from ..deploy.predict import collect_files
    from ..segmentation.checkpoint import load_segmenter
    from ..segmentation.predict import segment_files
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_segmenter(args.checkpoint, trust_pickle=args.trust_pickle)
    for r in segment_files(model, collect_files(args.inputs), args.output_dir, args.alpha):
        shown = ', '.join(f'{name} {share:.1%}' for name, share in r['classes'].items()) or 'background only'
        print(f'{r["file"]}: {shown} -> {r["output"]}')
    return 0
