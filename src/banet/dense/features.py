"""A timm ``features_only`` extractor prepared for dense prediction: weights, frozen stages and norms."""
import logging
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import timm
import torch
from timm.layers import Format, nhwc_to
from timm.models import adapt_input_conv
from torch import nn

from ..errors import BanetError
from ..layers import freeze_norms

__all__ = ['NORMS', 'WeightsReport', 'TimmFeatures']

_logger = logging.getLogger(__name__)

NORMS = ('frozen', 'bn')


class WeightsReport(NamedTuple):
    """How a classification state dict fitted the backbone (classifier keys excluded from both lists);
    ``adapted_keys``: input convolutions converted to the backbone's channel count."""
    missing_keys: list[str]
    unexpected_keys: list[str]
    adapted_keys: tuple[str, ...] = ()


def _classifier_keys(model: nn.Module) -> set[str]:
    names = model.pretrained_cfg.get('classifier') or ()
    names = (names,) if isinstance(names, str) else names
    return {f'{name}.{p}' for name in names for p in ('weight', 'bias')}


def _adapt_input_conv(reference: nn.Module, state: dict, expected: Mapping[str, torch.Tensor]) -> tuple[str, ...]:
    """Convert the first convolution of ``state`` in place when only its input channels differ from the model's
    (e.g. a backbone pretrained on grey images for an RGB detector), as timm converts pretrained weights for another
    ``in_chans`` (``adapt_input_conv``: channels repeated and scaled, so a grey image copied into every channel gives
    the pretrained response)."""
    names = reference.pretrained_cfg.get('first_conv') or ()
    adapted = []
    for key in (f'{n}.weight' for n in ((names,) if isinstance(names, str) else names)):
        if key not in state or key not in expected:
            continue
        have, want = state[key].shape, expected[key].shape
        if len(have) == 4 and have != want and (have[0], *have[2:]) == (want[0], *want[2:]):
            state[key] = adapt_input_conv(want[1], state[key], base_chans=have[1])
            adapted.append(key)
    return tuple(adapted)


def _check_weights(name: str, weights: Mapping[str, torch.Tensor], kwargs: dict) -> tuple[dict, WeightsReport]:
    """The state dict without the classifier, and its missing/unexpected keys against ``timm.create_model(name)``."""
    with torch.device('meta'):
        reference = timm.create_model(name, **kwargs)
    expected = reference.state_dict()
    dropped = _classifier_keys(reference)
    state = {k: v for k, v in weights.items() if k not in dropped}
    adapted = _adapt_input_conv(reference, state, expected)
    wrong = [f'{k} {tuple(v.shape)} (model: {tuple(expected[k].shape)})' for k, v in state.items()
             if k in expected and v.shape != expected[k].shape]
    if wrong:
        raise BanetError(f'backbone_weights do not fit {name}: {len(wrong)} shape mismatches, e.g. {wrong[0]}')
    report = WeightsReport(missing_keys=sorted(set(expected) - dropped - set(state)),
                           unexpected_keys=sorted(set(state) - set(expected)), adapted_keys=adapted)
    if adapted:
        _logger.info('backbone %s: input channels of %s converted with timm\'s adapt_input_conv', name,
                     ', '.join(adapted))
    if report.missing_keys:
        _logger.warning('backbone %s: %d keys missing from backbone_weights: %s', name, len(report.missing_keys),
                        ', '.join(report.missing_keys))
    if report.unexpected_keys:
        _logger.warning('backbone %s: %d unexpected keys in backbone_weights ignored: %s', name,
                        len(report.unexpected_keys), ', '.join(report.unexpected_keys))
    return {k: v for k, v in state.items() if k in expected}, report


def _create(name: str, out_indices: Sequence[int], weights: Optional[Mapping[str, torch.Tensor]],
            kwargs: dict) -> tuple[nn.Module, Optional[WeightsReport]]:
    if not timm.is_model(name):
        raise BanetError(f"unknown timm model '{name}' (see timm.list_models())")
    report, load = None, {}
    if weights is not None:
        state, report = _check_weights(name, weights, kwargs)
        # timm loads the dict into the classification model before wrapping it, so the keys need no renaming
        load = dict(pretrained=True, pretrained_cfg_overlay=dict(state_dict=state), pretrained_strict=False)
    try:
        body = timm.create_model(name, features_only=True, out_indices=tuple(out_indices), **load, **kwargs)
    except (AssertionError, AttributeError, NotImplementedError, RuntimeError, TypeError) as e:
        options = ''.join(f', {k}={v!r}' for k, v in kwargs.items())
        raise BanetError(f"timm model '{name}' cannot be built as a features_only extractor (out_indices="
                         f'{tuple(out_indices)}{options}): {type(e).__name__}: {e}') from None
    return body, report


def _stage_of_parameters(body: nn.Module) -> dict[str, int]:
    """Map each parameter name to its feature stage (0 = first entry of timm's feature_info, usually the stem).

    A parameter belongs to the stage whose feature module holds it; parameters between two feature modules
    (a stem, a max-pool, a skipped block) belong to the later one.
    """
    modules = [info['module'] for info in body.feature_info.info]
    prefixes = [{m + '.', m.replace('.', '_') + '.'} for m in modules]
    stages, last = {}, -1
    for pname, _ in body.named_parameters():
        probe = '.' + pname
        owner = next((i for i, ps in enumerate(prefixes) if any('.' + p in probe for p in ps)), None)
        if owner is not None:
            last = owner
        stages[pname] = owner if owner is not None else min(last + 1, len(modules) - 1)
    return stages


class TimmFeatures(nn.Module):
    """Multi-scale NCHW features of any timm model with ``features_only``, for detection and segmentation.

    ``out_indices`` are timm's feature indices (negative counts from the last stage). ``trainable_layers``
    follows torchvision's ``resnet_fpn_backbone``: the last N of the ``num_stages`` stages of timm's feature_info
    train, earlier ones are frozen (for a ResNet, 5 = all including the stem, 3 = layer2-4, 0 = none).
    ``norm='frozen'`` replaces every BatchNorm2d and the bridges' BatchNorm1d (``banet.freeze_norms``) so any
    batch size trains; ``'bn'`` keeps trainable batch norms. ``weights`` is a classification state dict of
    ``timm.create_model(name)`` (classifier dropped); ``weights_report`` says which keys were missing/unexpected.
    """

    def __init__(self, name: str, out_indices: Sequence[int], *, weights: Optional[Mapping[str, torch.Tensor]] = None,
                 trainable_layers: Optional[int] = None, norm: str = 'frozen', **model_kwargs: Any) -> None:
        super().__init__()
        if norm not in NORMS:
            raise BanetError(f"norm must be one of {NORMS}, got '{norm}'")
        self.body, self.weights_report = _create(name, out_indices, weights, model_kwargs)
        self.num_stages = len(self.body.feature_info.info)
        self.channels: list[int] = self.body.feature_info.channels()
        self.reductions: list[int] = self.body.feature_info.reduction()
        self._nhwc = getattr(self.body, 'output_fmt', Format.NCHW) == Format.NHWC
        if trainable_layers is not None:
            self._freeze_stages(trainable_layers)
        if norm == 'frozen':
            self.body = freeze_norms(self.body)

    def _freeze_stages(self, trainable_layers: int) -> None:
        if not 0 <= trainable_layers <= self.num_stages:
            raise BanetError(f'trainable_layers must be in [0, {self.num_stages}] for this backbone, '
                             f'got {trainable_layers}')
        first = self.num_stages - trainable_layers
        stages = _stage_of_parameters(self.body)
        for pname, param in self.body.named_parameters():
            if stages[pname] < first:
                param.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.body(x)
        return [nhwc_to(f, Format.NCHW) for f in features] if self._nhwc else list(features)
