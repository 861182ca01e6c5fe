"""BA models beyond ResNet: MobileNetV3, EfficientNet, ConvNeXt, Swin, RegNetY.

Model behaviour (forward, gradients, features, intermediates, classifier reset, determinism) runs on small inputs;
structure (parameter counts, shared weights, bridge placement) is checked against each model's timm base.
"""
import copy
import functools

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models._efficientnet_blocks import InvertedResidual
from timm.models.convnext import ConvNeXtBlock
from timm.models.regnet import Bottleneck as RegNetBottleneck
from timm.models.swin_transformer import SwinTransformerBlock
from torch import nn

import banet
from banet import BridgeAttention
from banet.models import BAConvNeXtBlock, BAInvertedResidual, BARegNetBottleneck, BASwinTransformerBlock

MODULES = ['ba_mobilenetv3', 'ba_efficientnet', 'ba_convnext', 'ba_swin', 'ba_regnet']
MODELS = sorted(timm.list_models(module=MODULES))
BASES = {
    'ba_mobilenetv3_large_100': 'mobilenetv3_large_100', 'ba_mobilenetv3_small_100': 'mobilenetv3_small_100',
    **{f'ba_efficientnet_b{i}': f'efficientnet_b{i}' for i in range(4)},
    'ba_convnext_tiny': 'convnext_tiny', 'ba_swin_tiny_patch4_window7_224': 'swin_tiny_patch4_window7_224',
    'ba_regnety_040': 'regnety_040',
}
# keyword arguments giving small, fast versions of the same architectures (RegNetY-200MF widths and depths for
# RegNetY; Swin needs an image size its windows fit)
SMALL = {
    'ba_mobilenetv3_large_100': {}, 'ba_mobilenetv3_small_100': {}, 'ba_efficientnet_b0': {},
    'ba_convnext_tiny': dict(depths=(1, 2, 1, 1), dims=(32, 64, 128, 256)),
    'ba_swin_tiny_patch4_window7_224': dict(
        img_size=64, window_size=4, embed_dim=32, depths=(2, 1, 1, 1), num_heads=(1, 2, 4, 8)),
    'ba_regnety_040': dict(w0=24, wa=36.44, wm=2.49, group_size=8, depth=13),
}
# the module each family's bridge replaces, where it has one
ATTENTION_BLOCKS = (InvertedResidual, RegNetBottleneck)
SIZE = 64


def _input(batch=2):
    return torch.randn(batch, 3, SIZE, SIZE)


def _small(name, **kwargs):
    return timm.create_model(name, **{**SMALL[name], **kwargs})


@functools.lru_cache(maxsize=None)
def _pair(name):
    """(timm base, BA model) built from the same seed and arguments (the small ones where given), eval mode."""
    kwargs = SMALL.get(name, {})
    torch.manual_seed(0)
    base = timm.create_model(BASES[name], **kwargs, **(dict(zero_init_last=False) if 'regnet' in name else {}))
    torch.manual_seed(0)
    return base.eval(), timm.create_model(name, **kwargs).eval()


def _replaced(base):
    """Names of the base model's attention modules that the bridges replace."""
    return [f'{n}.se' for n, m in base.named_modules()
            if type(m) in ATTENTION_BLOCKS and not isinstance(m.se, nn.Identity)]


def _bridge_params(b):
    """Parameter count of a bridge from the papers' formulas (d = C // r, N bridged widths c_i)."""
    n, d, c = len(b.in_channels), b.hidden, b.channels
    proj = sum(b.in_channels) * d + d * c
    return proj + (n * 2 * d if b.version == 'v1' else n + 1 + 2 * d)


def test_registry():
    assert set(MODELS) == set(BASES)


@pytest.mark.parametrize('name', MODELS)
def test_default_cfg_is_the_base_cfg_without_weights(name):
    cfg, base = timm.get_pretrained_cfg(name).to_dict(), timm.get_pretrained_cfg(BASES[name]).to_dict()
    for key in ('input_size', 'test_input_size', 'fixed_input_size', 'interpolation', 'crop_pct', 'mean', 'std',
                'pool_size', 'first_conv', 'classifier'):
        assert cfg.get(key) == base.get(key), key
    assert not cfg['url'] and not cfg.get('hf_hub_id') and cfg['architecture'] == name


@pytest.mark.parametrize('name', ['ba_mobilenetv3_large_100', 'ba_mobilenetv3_small_100', 'ba_efficientnet_b0',
                                  'ba_efficientnet_b3', 'ba_convnext_tiny', 'ba_swin_tiny_patch4_window7_224',
                                  'ba_regnety_040'])
def test_base_model_plus_bridges(name):
    """Same architecture and (seeded) weights as the timm base; its SE modules replaced by bridges, nothing else."""
    base, ba = _pair(name)
    replaced = _replaced(base)
    bridges = [m for m in ba.modules() if isinstance(m, BridgeAttention)]
    assert bridges and all(b.version == 'v2' for b in bridges)
    if replaced:  # one bridge for each replaced SE
        assert len(bridges) == len(replaced)
    n_base = sum(p.numel() for p in base.parameters())
    n_se = sum(p.numel() for n in replaced for p in base.get_submodule(n).parameters())
    assert sum(p.numel() for p in ba.parameters()) == n_base - n_se + sum(_bridge_params(b) for b in bridges)

    ba_sd, base_sd = ba.state_dict(), base.state_dict()
    kept = {k for k in base_sd if not any(k.startswith(n + '.') for n in replaced)}
    assert {k for k in ba_sd if '.ba.' not in k} == kept  # timm's key names: a base checkpoint loads (strict=False)
    assert all(torch.equal(ba_sd[k], base_sd[k]) for k in kept)


def _randomise_norms(module, seed):
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            m.weight.data = torch.rand(m.weight.shape, generator=g) + 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=g)
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean = torch.randn(m.running_mean.shape, generator=g)
            m.running_var = torch.rand(m.running_var.shape, generator=g) + 0.5


class _Mul(nn.Module):
    def __init__(self, g):
        super().__init__()
        self.g = g

    def forward(self, x):
        return x * self.g


def _nchw(t):
    return t.mean((2, 3))


def _last(t):  # channels last, any token layout (NHWC maps, (B, L, C) tokens, (B*windows, N, C) windows)
    return t.reshape(2, -1, t.shape[-1]).mean(1)


def _gate_before_act(block, g):
    block.se, block.bn2.act = nn.Identity(), nn.Sequential(_Mul(g), block.bn2.act)


def _gate_where_se_was(block, g):
    block.se = _Mul(g)


def _gate_regnet(block, g):
    block.se, block.conv3 = nn.Identity(), nn.Sequential(block.conv3, _Mul(g))


# model: (BA block class, block path, input shape, bridged features as (module, 'in'|'out', pooling), gate in base)
PLACEMENT = {
    'ba_mobilenetv3_large_100': (BAInvertedResidual, 'blocks.4.1', (2, 112, 6, 6),
                                 [('bn1', 'out', _nchw), ('bn2.act', 'in', _nchw)], _gate_before_act),
    'ba_mobilenetv3_small_100': (BAInvertedResidual, 'blocks.2.0', (2, 24, 8, 8),
                                 [('bn1', 'out', _nchw), ('bn2.act', 'in', _nchw)], _gate_before_act),
    'ba_efficientnet_b0': (BAInvertedResidual, 'blocks.1.1', (2, 24, 8, 8),
                           [('bn1', 'out', _nchw), ('bn2', 'out', _nchw)], _gate_where_se_was),
    'ba_convnext_tiny': (BAConvNeXtBlock, 'stages.1.blocks.1', (2, 64, 6, 6),
                         [('norm', 'out', _last), ('mlp.act', 'out', _last), ('mlp.fc2', 'out', _last)],
                         lambda block, g: setattr(block.mlp, 'drop2', _Mul(g.view(2, 1, 1, -1)))),
    'ba_swin_tiny_patch4_window7_224': (BASwinTransformerBlock, 'layers.0.blocks.1', (2, 16, 16, 32),
                                        [('attn', 'out', _last), ('mlp.act', 'out', _last),
                                         ('mlp.fc2', 'out', _last)],
                                        lambda block, g: setattr(block.mlp, 'drop2', _Mul(g.view(2, 1, -1)))),
    'ba_regnety_040': (BARegNetBottleneck, 's3.b2', (2, 152, 6, 6),
                       [('conv1', 'out', _nchw), ('conv2', 'out', _nchw), ('conv3.0', 'out', _nchw)], _gate_regnet),
}


@pytest.mark.parametrize('name', sorted(PLACEMENT))
def test_bridge_placement(name):
    """The bridge pools the intended tensors and its gate acts exactly where the docs say; nothing else changes.

    Reference: timm's own block (same weights), its features read with hooks and a fixed gate patched in by hand.
    """
    cls, path, shape, bridged, patch_gate = PLACEMENT[name]
    base, ba = (copy.deepcopy(m.get_submodule(path)) for m in _pair(name))
    assert type(ba) is cls
    _randomise_norms(base, 1)
    _randomise_norms(ba, 1)
    x = torch.randn(shape)
    gate = torch.rand(2, ba.ba.channels, 1, 1) + 0.1
    patch_gate(base, gate)
    ba.ba.register_forward_hook(lambda m, args, out: gate)

    seen, expected = [], []
    ba.ba.register_forward_pre_hook(lambda m, args: seen.extend(args[0]))
    for module, where, pool in bridged:  # paths in the patched base
        hook = base.get_submodule(module)
        if where == 'in':
            hook.register_forward_pre_hook(lambda m, args, pool=pool: expected.append(pool(args[0])))
        else:
            hook.register_forward_hook(lambda m, args, out, pool=pool: expected.append(pool(out)))
    with torch.no_grad():
        out, ref = ba(x), base(x)
    assert len(seen) == len(expected) == len(bridged)
    for s, e in zip(seen, expected):
        torch.testing.assert_close(s, e, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_mobilenetv3_and_efficientnet_follow_bav1():
    """BAv1's official choices: reduction 6 on the expanded width; hard-sigmoid gate and ReLU (MobileNetV3),
    sigmoid gate and swish (EfficientNet); SE kept where there is no expansion layer."""
    mnv3, effnet = _pair('ba_mobilenetv3_large_100')[1], _pair('ba_efficientnet_b0')[1]
    t = torch.linspace(-5, 5, 41)
    for model, gate, act, before in ((mnv3, F.hardsigmoid, F.relu, True), (effnet, torch.sigmoid, F.silu, False)):
        blocks = [m for m in model.modules() if isinstance(m, BAInvertedResidual)]
        for b in blocks:
            mid = b.conv_dw.out_channels
            assert b.ba.in_channels == (mid, mid) and b.ba.hidden == mid // 6 and b.gate_before_act is before
            torch.testing.assert_close(b.ba.gate(t.clone()), gate(t))
            torch.testing.assert_close(b.ba.act(t.clone()), act(t))
    assert type(effnet.blocks[0][0].se).__name__ == 'SqueezeExcite'  # depthwise-separable stem block
    small = _pair('ba_mobilenetv3_small_100')[1]
    assert type(small.blocks[0][0].se).__name__ == 'SqueezeExcite'


@pytest.mark.parametrize('name', sorted(SMALL))
def test_forward_backward(name):
    model = _small(name, num_classes=7, drop_path_rate=0.1).train()
    out = model(_input(batch=4))
    assert out.shape == (4, 7) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f'parameters without gradient: {no_grad[:5]}'
    bridges = [m for m in model.modules() if isinstance(m, BridgeAttention)]
    assert bridges and all(all(p.weight.grad.abs().sum() > 0 for p in b.proj) for b in bridges)


@pytest.mark.parametrize('name', sorted(SMALL))
def test_features_only_matches_feature_info(name):
    model = _small(name, features_only=True).eval()
    feats = model(_input())
    channels_last = str(getattr(model, 'output_fmt', 'NCHW')).endswith('NHWC')
    info = model.feature_info
    assert [f.shape[-1 if channels_last else 1] for f in feats] == info.channels()
    assert [SIZE // f.shape[-2 if channels_last else -1] for f in feats] == info.reduction()
    assert any(isinstance(m, BridgeAttention) for m in model.modules())


@pytest.mark.parametrize('name', sorted(SMALL))
def test_forward_intermediates(name):
    model = _small(name).eval()
    x = _input()
    final, inter = model.forward_intermediates(x)
    torch.testing.assert_close(final, model.forward_features(x))
    assert [t.shape[1] for t in inter] == [i['num_chs'] for i in model.feature_info]
    assert [SIZE // t.shape[-1] for t in inter] == [i['reduction'] for i in model.feature_info]
    last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert len(last_two) == 2 and torch.equal(last_two[-1], inter[-1])


@pytest.mark.parametrize('name', sorted(SMALL))
def test_reset_classifier(name):
    model = _small(name).eval()
    assert model.get_submodule(model.pretrained_cfg['classifier']) is model.get_classifier()
    model.reset_classifier(5)
    assert model(_input()).shape == (2, 5)
    model.reset_classifier(0)
    assert model(_input()).shape == (2, model.head_hidden_size)  # pre-logits: MobileNetV3's head conv is wider


@pytest.mark.parametrize('name', sorted(SMALL))
def test_seeded_determinism(name):
    outs = []
    for _ in range(2):
        torch.manual_seed(42)
        outs.append(_small(name).eval()(torch.ones(2, 3, SIZE, SIZE)))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize('name', ['ba_mobilenetv3_small_100', 'ba_convnext_tiny'])
def test_version_and_reduction_switch(name):
    model = _small(name, ba_version='v1', ba_reduction=4)
    bridges = [m for m in model.modules() if isinstance(m, BridgeAttention)]
    assert bridges and all(b.version == 'v1' and b.hidden == b.channels // 4 for b in bridges)
    assert model.train()(_input()).shape == (2, 1000)


@pytest.mark.parametrize('name, features_only', [
    ('ba_mobilenetv3_small_100', False), ('ba_efficientnet_b0', True), ('ba_convnext_tiny', True)])
def test_pretrained_file_loads_into_the_bridged_model(tmp_path, name, features_only):
    """timm's pretrained path (here a local file) loads a bridged checkpoint, bridges included."""
    from safetensors.torch import save_file
    kwargs = SMALL[name]
    torch.manual_seed(1)
    saved = timm.create_model(name, **kwargs).state_dict()
    save_file(saved, tmp_path / 'w.safetensors')
    torch.manual_seed(2)
    model = timm.create_model(name, pretrained=True, features_only=features_only,
                              pretrained_cfg_overlay=dict(file=str(tmp_path / 'w.safetensors')), **kwargs)
    loaded = model.state_dict()
    bridge_keys = [k for k in loaded if '.ba.' in k]
    assert bridge_keys
    for k in bridge_keys:  # FeatureListNet flattens the first module level ('stages.0' -> 'stages_0')
        original = k if k in saved else k.replace('_', '.', 1)
        assert torch.equal(loaded[k], saved[original]), k


def test_convnext_conv_mlp_is_a_clear_error():
    with pytest.raises(ValueError, match='conv_mlp=False'):
        timm.create_model('ba_convnext_tiny', conv_mlp=True, depths=(1, 1, 1, 1))


def test_blocks_convert_in_place_only_from_timm_blocks():
    with pytest.raises(TypeError, match='InvertedResidual'):
        BAInvertedResidual.from_block(nn.Conv2d(1, 1, 1))


def test_profile_lists_every_banet_model():
    """`banet profile` without names covers every registered banet model, these families included."""
    from banet.models import MODEL_MODULES
    registered = {n for n in timm.list_models() if timm.models.model_entrypoint(n).__module__.startswith('banet.')}
    assert set(timm.list_models(module=list(MODEL_MODULES))) == registered and set(MODELS) <= registered


@pytest.mark.parametrize('name', ['ba_mobilenetv3_small_100', 'ba_swin_tiny_patch4_window7_224'])
def test_fuse_keeps_outputs(name):
    model = _small(name).eval()
    x = _input()
    with torch.no_grad():
        expected = model(x)
        banet.fuse(model)  # MobileNetV3 has no plain conv-BN pair: only the bridges fold
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)
    assert not any(isinstance(m, BridgeAttention) for m in model.modules())


@pytest.mark.parametrize('name, plain', [('ba_convnext_tiny', ConvNeXtBlock),
                                         ('ba_swin_tiny_patch4_window7_224', SwinTransformerBlock),
                                         ('ba_regnety_040', RegNetBottleneck)])
def test_model_classes_bridge_every_block_with_the_given_bridge(name, plain):
    """The ConvNeXt, Swin and RegNet classes build timm's model, then bridge all its blocks with ``ba_version`` and
    ``ba_reduction``."""
    model = _small(name, ba_version='v1', ba_reduction=4)
    assert not [m for m in model.modules() if type(m) is plain]
    blocks = [m for m in model.modules() if hasattr(m, 'ba')]
    assert len(blocks) == (SMALL[name].get('depth') or sum(SMALL[name]['depths']))
    assert all(b.ba.version == 'v1' and b.ba.hidden == b.ba.channels // 4 for b in blocks)
