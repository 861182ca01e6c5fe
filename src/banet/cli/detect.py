"""``banet detect train|validate|predict``: torchvision detectors over BA (or any timm) backbones on COCO data."""
import argparse
import json
import os

from ._options import add_config_options, config_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'detect', help='object detection: train, validate (COCO AP) and predict with BA backbones',
        description='Faster/Mask R-CNN, RetinaNet and FCOS (torchvision) with an FPN over a timm backbone, on data '
                    'in the COCO layout (DIR/annotations/instances_SPLIT.json, DIR/SPLIT/). See docs/detection.md.')
    actions = p.add_subparsers(dest='action', required=True, metavar='ACTION')
    from ..detection.options import DetectTrainConfig, DetectValidateConfig
    t = actions.add_parser('train', help='train a detector (run folder with best/, last/, metrics.csv, exact resume)')
    add_config_options(t, DetectTrainConfig)
    t.set_defaults(run=_train, parser=t, cls=DetectTrainConfig)
    v = actions.add_parser('validate', help='COCO box/mask AP of a checkpoint, written as JSON')
    add_config_options(v, DetectValidateConfig)
    v.set_defaults(run=_validate, parser=v, cls=DetectValidateConfig)
    d = actions.add_parser('predict', help='draw the detections of a checkpoint on images (PNGs)')
    d.add_argument('inputs', nargs='+', metavar='IMAGE|FOLDER', help='image files and/or folders')
    d.add_argument('--checkpoint', required=True, help='a banet detect train run folder (best/ is used)')
    d.add_argument('--output-dir', default='detections', help='folder for the drawn PNGs (default ./detections)')
    d.add_argument('--score-thresh', type=float, default=0.5, help='keep detections scoring at least this')
    d.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    d.add_argument('--trust-pickle', action='store_true', help='allow pickle weights (trusted files only)')
    d.set_defaults(run=_predict)
    s = actions.add_parser('scenes', help='write the Fashion-MNIST scenes: an offline COCO-layout set with boxes and '
                                          'masks (docs/detection.md)')
    s.add_argument('--fmnist-dir', default='/usr/share/datasets/fashion-mnist',
                   help="Fashion-MNIST's IDX .gz files (default: the Debian package's folder)")
    s.add_argument('--output', required=True, metavar='DIR', help='scenes folder to write (once; kept if it exists '
                                                                   'with the same parameters)')
    s.add_argument('--train', type=int, default=2000, help='training scenes (default 2000)')
    s.add_argument('--val', type=int, default=500, help='validation scenes (default 500)')
    s.add_argument('--seed', type=int, default=0, help='random seed (same seed, same files)')
    s.add_argument('--canvas', type=int, default=128, help='scene side in px (default 128)')
    s.set_defaults(run=_scenes)


def _train(args: argparse.Namespace) -> int:
    from ..detection.trainer import train_detector
    train_detector(config_from_args(args.cls, args))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from ..detection.validate import validate_detector
    result = validate_detector(config_from_args(args.cls, args))
    if os.environ.get('RANK', '0') == '0':  # under torchrun every process scores; the first one reports
        print(json.dumps(result, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    import torch
    from ..deploy.predict import collect_files
    from ..detection.checkpoint import load_detector
    from ..detection.predict import detect_files
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_detector(args.checkpoint, trust_pickle=args.trust_pickle)
    for r in detect_files(model, collect_files(args.inputs), args.output_dir, args.score_thresh):
        shown = ', '.join(f'{d["label"]} {d["score"]:.2f}' for d in r['detections']) or 'nothing'
        print(f'{r["file"]}: {shown} -> {r["output"]}')
    return 0


def _scenes(args: argparse.Namespace) -> int:
    from ..detection.scenes import make_scenes
    out = make_scenes(args.fmnist_dir, args.output, args.train, args.val, args.seed, canvas=args.canvas)
    print(f'scenes: {out} (annotations/instances_train.json, instances_val.json; train/, val/)')
    return 0
