"""Seeing inside a bridged model: what each bridge's gate does, which bridged layer BAv2 selects, and Grad-CAM.

* Gate statistics come from forward hooks on every :class:`~banet.BridgeAttention` (its maths is untouched): the
  mean, standard deviation, minimum and maximum of the gate over its channels (and over the images given).
* BAv2's selection weights α_i (the official ``Linear(N, 1)``, ``select.weight``) are learned parameters, the same
  for every input; per block they show how strongly each bridged convolution output feeds the gate.
* Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
  ICCV 2017): the last feature stage's channels weighted by the spatial mean of the class score's gradient,
  summed, rectified.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BanetError
from ..io.figures import pyplot, save_figure
from ..io.files import PathLike
from ..layers import BridgeAttention

__all__ = ['GradCam', 'bridge_modules', 'record_bridges', 'grad_cam', 'heatmap', 'plot_alpha', 'plot_gates',
           'plot_grad_cam']


def bridge_modules(model: nn.Module) -> List[Tuple[str, BridgeAttention]]:
    """(name, module) of every BridgeAttention in ``model``, in forward order."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, BridgeAttention)]
    if not found:
        raise BanetError('the model has no BridgeAttention modules (a fused model has none: inspect it unfused)')
    return found


def _stage(block: str) -> str:
    return block.rsplit('.', 1)[0] if '.' in block else block


@torch.no_grad()
def record_bridges(model: nn.Module, x: torch.Tensor) -> Tuple[torch.Tensor, List[Dict[str, Any]]]:
    """Run ``model`` (eval mode) on ``x`` and return (logits, one record per bridge).

    A record holds ``block`` (the module holding the bridge), ``stage``, ``version``, ``in_channels``, the gate's
    ``mean``/``std``/``min``/``max`` over channels and images, and ``alpha`` (BAv2; ``None`` for BAv1).
    """
    model.eval()
    bridges = bridge_modules(model)
    gates: Dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: gates.__setitem__(name, out.detach()))
             for name, m in bridges]
    try:
        logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    records = []
    for name, m in bridges:
        g = gates[name].float().flatten()
        block = name.rsplit('.', 1)[0]
        records.append({
            'block': block, 'stage': _stage(block), 'version': m.version, 'in_channels': list(m.in_channels),
            'mean': g.mean().item(), 'std': g.std(unbiased=False).item(), 'min': g.min().item(),
            'max': g.max().item(),
            'alpha': m.select.weight[0].tolist() if m.version == 'v2' else None})
    return logits, records


@dataclass
class GradCam:
    """Grad-CAM maps at the feature stage's resolution (B, h, w), the explained classes and their probabilities."""
    maps: torch.Tensor
    classes: torch.Tensor
    probs: torch.Tensor


def grad_cam(model: nn.Module, x: torch.Tensor, target: Optional[torch.Tensor] = None,
             layer: Optional[str] = None) -> GradCam:
    """Grad-CAM of ``target`` classes (default: the predicted ones) at ``layer`` (default: the last stage timm's
    ``feature_info`` names). The model's parameters are not changed and get no gradients."""
    model.eval()
    if layer is None:
        info = getattr(model, 'feature_info', None)
        if not info:
            raise BanetError('the model has no feature_info: name the layer to explain')
        layer = info[-1]['module']
    module = model.get_submodule(layer)
    store: Dict[str, torch.Tensor] = {}
    hook = module.register_forward_hook(lambda mod, inp, out: store.__setitem__('act', out))
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True))
            classes = logits.argmax(1) if target is None else target.to(logits.device)
            score = logits.gather(1, classes[:, None]).sum()
            grad, = torch.autograd.grad(score, store['act'])
    finally:
        hook.remove()
    act = store['act'].detach()
    maps = F.relu((grad.mean((2, 3), keepdim=True) * act).sum(1))
    probs = logits.detach().float().softmax(1).gather(1, classes[:, None])[:, 0]
    return GradCam(maps, classes, probs)


def heatmap(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Grad-CAM maps upsampled (bilinear) to ``size`` and scaled to [0, 1] per image."""
    up = F.interpolate(maps[:, None].float(), size=tuple(size), mode='bilinear', align_corners=False)[:, 0]
    low, high = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    return (up - low) / (high - low).clamp_min(1e-12)


def plot_alpha(records: List[Dict[str, Any]], path: PathLike, title: str = '') -> Optional[Path]:
    """One panel per stage: BAv2's α_i per block, a bar per bridged feature. ``None`` without BAv2 bridges."""
    records = [r for r in records if r['alpha'] is not None]
    if not records:
        return None
    plt = pyplot()
    stages = list(dict.fromkeys(r['stage'] for r in records))
    fig, axes = plt.subplots(1, len(stages), figsize=(2.2 * len(stages) + 1, 2.6), sharey=True, squeeze=False)
    for ax, stage in zip(axes[0], stages):
        rows = [r for r in records if r['stage'] == stage]
        n = max(len(r['alpha']) for r in rows)
        width = 0.8 / n
        for i in range(n):
            ax.bar([b + (i - (n - 1) / 2) * width for b in range(len(rows))],
                   [r['alpha'][i] if i < len(r['alpha']) else 0 for r in rows], width, label=f'conv{i + 1}')
        ax.axhline(0, color='k', lw=0.5)
        ax.set_xticks(range(len(rows)), [r['block'].rsplit('.', 1)[-1] for r in rows])
        ax.set_title(stage, fontsize=9)
        ax.set_xlabel('block', fontsize=8)
    axes[0][0].set_ylabel('selection weight α')
    axes[0][-1].legend(fontsize=7, title='bridged output', title_fontsize=7)
    fig.suptitle(title or 'BAv2: selection weight of each bridged conv output, per block', fontsize=9, y=1.03)
    return save_figure(fig, path)


def plot_gates(records: List[Dict[str, Any]], path: PathLike, title: str = '') -> Path:
    """Gate mean ± std and min/max against block depth, stages separated by dotted lines."""
    plt = pyplot()
    depth = list(range(len(records)))
    mean = [r['mean'] for r in records]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(records) + 1.5), 2.6))
    ax.fill_between(depth, [r['min'] for r in records], [r['max'] for r in records], alpha=0.15, label='min–max')
    ax.fill_between(depth, [m - r['std'] for m, r in zip(mean, records)],
                    [m + r['std'] for m, r in zip(mean, records)], alpha=0.35, label='mean ± std')
    ax.plot(depth, mean, marker='o', ms=3, label='mean')
    for d in range(1, len(records)):
        if records[d]['stage'] != records[d - 1]['stage']:
            ax.axvline(d - 0.5, color='k', ls=':', lw=0.8)
    ax.set_xticks(depth, [r['block'] for r in records], rotation=60, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel('gate value')
    ax.legend(fontsize=7, loc='lower left')
    ax.set_title(title or 'bridge gates by depth (over channels and images)', fontsize=9)
    return save_figure(fig, path)


def plot_grad_cam(images: torch.Tensor, cam: GradCam, labels: Sequence[str], path: PathLike,
                  titles: Optional[Sequence[str]] = None) -> Path:
    """Each image (display range [0, 1], (B, C, H, W)) beside its Grad-CAM heat-map overlay."""
    plt = pyplot()
    heat = heatmap(cam.maps, images.shape[-2:])
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.5 * n + 0.2, 3.3), squeeze=False)
    for j in range(n):
        img = images[j].permute(1, 2, 0).clamp(0, 1).numpy()
        kw = {'cmap': 'gray', 'vmin': 0, 'vmax': 1} if img.shape[-1] == 1 else {}
        img = img[..., 0] if img.shape[-1] == 1 else img
        for ax in axes[:, j]:
            ax.imshow(img, interpolation='nearest', **kw)
            ax.set_axis_off()
        axes[1, j].imshow(heat[j].numpy(), cmap='jet', alpha=0.45, interpolation='bilinear')
        head = f'{titles[j]}\n' if titles else ''
        axes[0, j].set_title(f'{head}{labels[j]} {cam.probs[j]:.0%}', fontsize=7)
    axes[1, 0].set_title('Grad-CAM', fontsize=7, loc='left')
    return save_figure(fig, path)
