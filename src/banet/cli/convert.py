"""``banet convert``: an official BA-Net checkpoint to a banet safetensors file."""
import argparse

import timm

from ..errors import BanetError
from ..io import check_model_name, fit_report, read_checkpoint, save_state_dict_file
from ..layers import BridgeAttention
from ..models.official import LAYOUT_VERSION, detect_layout


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'convert', help='convert an official BAv1/BAv2 checkpoint to safetensors',
        description='Convert a checkpoint of the official BA-Net code (any of its three layouts) to banet\'s key '
                    'layout, check that it loads strictly into --model, and write it as safetensors.')
    p.add_argument('src', help='official checkpoint (.pth/.pth.tar/.pt or .safetensors)')
    p.add_argument('--model', required=True, help='banet model it belongs to, e.g. ba_resnet50 or bav1_resnet50')
    p.add_argument('--out', required=True, help='output .safetensors file')
    p.add_argument('--num-classes', type=int, default=None, help='classes of the checkpoint (default: from it)')
    p.add_argument('--trust-pickle', action='store_true',
                   help='allow a pickle with Python objects beside the tensors (only for files you trust)')
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.out.endswith('.safetensors'):
        raise BanetError(f'--out must end in .safetensors, got {args.out!r}')
    check_model_name(args.model, ': see timm.list_models("ba*")')
    ckpt = read_checkpoint(args.src, trust_pickle=args.trust_pickle)  # the one loader: found, read, converted
    layout, converted = ckpt.layout, ckpt.state_dict
    if layout == 'timm':
        detect_layout(converted)  # raises: no bridge-attention weights in it
    num_classes = args.num_classes or (converted['fc.weight'].shape[0] if 'fc.weight' in converted else 1000)
    model = timm.create_model(args.model, num_classes=num_classes)
    want = LAYOUT_VERSION[layout]
    have = next(m.version for m in model.modules() if isinstance(m, BridgeAttention))
    if want is not None and want != have:
        raise BanetError(
            f'{args.src} is a BA{want} checkpoint (layout {layout}) but {args.model} uses BA{have} bridges: '
            f'choose a {"bav1_" if want == "v1" else "ba_"}resnet* model')
    missing, unexpected, wrong = fit_report(model, converted)
    if missing or unexpected or wrong:
        raise BanetError(
            f'the converted weights do not fit {args.model} (is it the right depth?): missing {missing[:3]}, '
            f'unexpected {unexpected[:3]}, wrong shape {wrong[:3]}')
    model.load_state_dict(converted, strict=True)
    save_state_dict_file(converted, args.out)
    n = sum(v.numel() for v in converted.values() if v.is_floating_point())
    print(f'{args.src}: layout {layout} -> {args.out} ({len(converted)} tensors, {n:,} values) for {args.model}')
    return 0
