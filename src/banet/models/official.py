"""Conversion of the authors' BA-Net checkpoints to banet's timm models.

Three official layouts exist, all torchvision-style ResNets whose blocks hold a ``ba`` module:

* ``bav1``     – BAv1 repo (zhaoy376/Bridge-Attention): ``ba.pre_fusions.i`` / ``ba.cur_fusion`` (Linear + BN1d each),
  ``ba.generation.1`` (expansion).
* ``bav2_v1``  – BAv2 repo, ``ba_resnet_v1.py``: ``ba.fusions.i`` (Linear + BN1d), ``ba.generation.1``.
* ``bav2_v2_1``– BAv2 repo, ``ba_resnet_v2_1.py``: ``ba.fusions.i`` (Linear), ``ba.proj`` (Linear(N, 1)),
  ``ba.generation.0`` (BN1d), ``ba.generation.2`` (expansion).

Everything outside ``ba`` (convs, norms, downsample, fc) already has timm's names.
"""
import re
from typing import Any, Dict, Mapping

import torch

from ..errors import BanetError

__all__ = ['convert_official', 'detect_layout', 'unwrap_state_dict', 'checkpoint_filter_fn', 'LAYOUT_VERSION']

#: BA version (banet ``ba_version``) of each layout; ``banet`` is already converted.
LAYOUT_VERSION = {'bav1': 'v1', 'bav2_v1': 'v1', 'bav2_v2_1': 'v2', 'banet': None}

_RULES = {
    'bav1': [
        (r'pre_fusions\.(\d+)\.0\.weight', r'proj.\1.weight'),
        (r'pre_fusions\.(\d+)\.1\.(\w+)', r'proj_norm.\1.\2'),
        (r'generation\.1\.weight', 'fc.weight'),
    ],
    'bav2_v1': [
        (r'fusions\.(\d+)\.0\.weight', r'proj.\1.weight'),
        (r'fusions\.(\d+)\.1\.(\w+)', r'proj_norm.\1.\2'),
        (r'generation\.1\.weight', 'fc.weight'),
    ],
    'bav2_v2_1': [
        (r'fusions\.(\d+)\.0\.weight', r'proj.\1.weight'),
        (r'proj\.(weight|bias)', r'select.\1'),
        (r'generation\.0\.(\w+)', r'norm.\1'),
        (r'generation\.2\.weight', 'fc.weight'),
    ],
}


def unwrap_state_dict(checkpoint: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint saved as a plain state dict or as ``{'model'|'state_dict': …}``, with any
    DataParallel/DDP ``module.`` (or ``torch.compile`` ``_orig_mod.``) prefix removed."""
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    out = {}
    for k, v in checkpoint.items():
        if not isinstance(v, torch.Tensor):
            raise BanetError(f'checkpoint entry {k!r} is a {type(v).__name__}, not a tensor: not a state dict')
        out[re.sub(r'^(module\.|_orig_mod\.)+', '', k)] = v
    return out


def detect_layout(state_dict: Mapping[str, Any]) -> str:
    """Name the layout of an (unwrapped or wrapped) state dict: one of :data:`LAYOUT_VERSION`'s keys."""
    keys = list(unwrap_state_dict(state_dict))
    ba_keys = [k for k in keys if '.ba.' in k]
    if not ba_keys:
        raise BanetError('no bridge-attention weights (".ba." keys) in this state dict: is it a BA-Net checkpoint?')
    if any('.ba.pre_fusions.' in k for k in ba_keys):
        return 'bav1'
    if any(k.endswith('.ba.proj.weight') for k in ba_keys):
        return 'bav2_v2_1'
    if any('.ba.fusions.' in k for k in ba_keys):
        return 'bav2_v1'
    if any(re.search(r'\.ba\.proj\.\d+\.weight$', k) for k in ba_keys):
        return 'banet'
    raise BanetError(f'unrecognised bridge-attention layout (e.g. key {ba_keys[0]!r})')


def _convert_key(layout: str, key: str, n_pre: Dict[str, int]) -> str:
    block, sep, rest = key.partition('.ba.')
    if not sep:
        return key
    m = re.fullmatch(r'cur_fusion\.(0|1)\.(\w+)', rest)
    if layout == 'bav1' and m:  # the current (gated) feature is the last bridged branch
        name = 'proj' if m.group(1) == '0' else 'proj_norm'
        return f'{block}.ba.{name}.{n_pre[block]}.{m.group(2)}'
    for pattern, repl in _RULES[layout]:
        if re.fullmatch(pattern, rest):
            return f'{block}.ba.{re.sub(pattern, repl, rest)}'
    raise BanetError(f'unexpected key {key!r} in a {layout} checkpoint')


def convert_official(state_dict: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """Convert an official BAv1/BAv2 state dict (any layout above, wrapped or ``module.``-prefixed) to banet's.

    The result loads with ``strict=True`` into the matching ``bav1_resnet*`` (layouts ``bav1``, ``bav2_v1``) or
    ``ba_resnet*`` (``bav2_v2_1``) model. A banet state dict passes through unchanged.
    """
    sd = unwrap_state_dict(state_dict)
    layout = detect_layout(sd)
    if layout == 'banet':
        return sd
    n_pre: Dict[str, int] = {}
    for k in sd:
        m = re.match(r'(.*)\.ba\.pre_fusions\.(\d+)\.0\.weight$', k)
        if m:
            n_pre[m.group(1)] = max(n_pre.get(m.group(1), 0), int(m.group(2)) + 1)
    return {_convert_key(layout, k, n_pre): v for k, v in sd.items()}


def checkpoint_filter_fn(state_dict: Mapping[str, Any], model: Any = None) -> Dict[str, torch.Tensor]:
    """timm's ``pretrained_filter_fn`` for the BA ResNets: an official checkpoint (any layout, wrapped or prefixed)
    becomes banet's layout on timm's own loading path, e.g.
    ``timm.create_model('ba_resnet50', pretrained=True, pretrained_cfg_overlay=dict(file='official.pth.tar'))``."""
    sd = unwrap_state_dict(state_dict)
    return convert_official(sd) if any('.ba.' in k for k in sd) else sd
