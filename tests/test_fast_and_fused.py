"""The fast bridge equals the straightforward reference (forward, backward, running statistics); fuse() parity."""
import copy
import types

import pytest
import timm
import torch
from torch import nn

import banet
from banet import BridgeAttention, FusedBridgeAttention
from reference_bridge import ReferenceBridgeAttention, as_reference, as_reference_model

WIDTHS = [64, 64, 256]


def _randomise_norms(module):
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.normal_(m.weight, 1, 0.2)
            nn.init.normal_(m.bias, 0, 0.2)
    return module


@pytest.mark.parametrize('version', ['v1', 'v2'])
@pytest.mark.parametrize('training', [True, False])
def test_fast_equals_reference(version, training):
    fast = _randomise_norms(BridgeAttention(WIDTHS, 256, version=version)).train(training)
    ref = as_reference(fast)
    pooled = [torch.randn(8, c) for c in WIDTHS]
    pooled_ref = [p.clone().requires_grad_() for p in pooled]
    pooled = [p.requires_grad_() for p in pooled]
    out, out_ref = fast(pooled), ref(pooled_ref)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_ref.backward(grad)
    for p, q in zip(pooled, pooled_ref):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)
    grads_ref = dict(ref.named_parameters())
    for name, p in fast.named_parameters():
        # atol covers β, whose true gradient is 0 in training (the batch norm after it removes any shift)
        torch.testing.assert_close(p.grad, grads_ref[name].grad, rtol=1e-4, atol=1e-5)
    buffers_ref = dict(ref.named_buffers())
    for name, b in fast.named_buffers():  # running statistics updated identically
        torch.testing.assert_close(b, buffers_ref[name], rtol=1e-5, atol=1e-6)


def test_reference_is_an_independent_formula():
    """Guard against the reference silently reusing the fast path."""
    assert ReferenceBridgeAttention.fuse_branches is not BridgeAttention.fuse_branches


@pytest.mark.parametrize('version', ['v1', 'v2'])
def test_fused_layer_equals_eval_layer(version):
    ba = _randomise_norms(BridgeAttention(WIDTHS, 256, version=version)).eval()
    fused = ba.fuse()
    assert isinstance(fused, FusedBridgeAttention) and fused.linear.in_features == sum(WIDTHS)
    pooled = [torch.randn(4, c) for c in WIDTHS]
    torch.testing.assert_close(fused(pooled), ba(pooled), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', ['ba_resnet50', 'bav1_resnet18', 'ba_resnet50d', 'ba_resnet20_cifar', 'resnet50'])
def test_fuse_model_parity(name):
    model = _randomise_norms(timm.create_model(name)).eval()
    size = 32 if name.endswith('_cifar') else 64
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = model(x)
        fused = banet.fuse(copy.deepcopy(model))
        got = fused(x)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, BridgeAttention)) for m in fused.modules())
    assert ((got - expected).abs().max() / expected.abs().max()) <= 1e-5


@pytest.mark.parametrize('name,kwargs', [('ba_resnet20_cifar', {}), ('bav1_resnet18', {}),
                                         ('ba_resnet50', {'drop_path_rate': 0.2})])
def test_fast_model_step_equals_reference_model_step(name, kwargs):
    """A whole training step of the fast blocks (bridge_pool, channel_gate fused with the residual add, one-matmul
    fusion) equals the same step of the straightforward blocks and bridges (in float64: deep nets with batch norms
    over tiny batches amplify float32 rounding past any useful tolerance)."""
    torch.manual_seed(0)
    fast = timm.create_model(name, num_classes=10, **kwargs).train().double()
    ref = as_reference_model(fast).double()
    assert not any(isinstance(m, BridgeAttention) and not isinstance(m, ReferenceBridgeAttention)
                   for m in ref.modules())
    size = 32 if name.endswith('_cifar') else 64
    _assert_same_training_step(fast, ref, size)


def _assert_same_training_step(fast, ref, size):
    """One float64 step of both models from the same input: same outputs and parameter gradients."""
    x, y = torch.randn(4, 3, size, size, dtype=torch.float64), torch.randint(0, 10, (4,))
    outs = []
    for model in (fast, ref):
        torch.manual_seed(1)  # the same drop-path draws
        out = model(x)
        nn.functional.cross_entropy(out, y).backward()
        outs.append(out)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-9, atol=1e-10)
    grads_ref = dict(ref.named_parameters())
    for name, p in fast.named_parameters():
        torch.testing.assert_close(p.grad, grads_ref[name].grad, rtol=1e-7, atol=1e-9)


def _straight_inverted_residual(block, x):
    """BAInvertedResidual with mean pooling and a plain product (the blocks of these models have no conv_s2d)."""
    shortcut = x
    x = block.bn1(block.conv_pw(x))
    s1 = x.mean((2, 3))
    x = block.bn2(block.conv_dw(x))
    if not block.gate_before_act:
        x = block.act_dw(x)
    x = x * block.ba([s1, x.mean((2, 3))])
    if block.gate_before_act:
        x = block.act_dw(x)
    x = block.bn3(block.conv_pwl(block.aa(x)))
    return block.drop_path(x) + shortcut if block.has_skip else x


def _straight_regnet(block, x):
    """BARegNetBottleneck with mean pooling and a plain product."""
    shortcut = x
    x = block.conv1(x)
    s1 = x.mean((2, 3))
    x = block.conv2(x)
    s2 = x.mean((2, 3))
    x = block.conv3(x)
    x = x * block.ba([s1, s2, x.mean((2, 3))])
    if block.downsample is not None:
        x = block.drop_path(x) + block.downsample(shortcut)
    return block.act3(x)


@pytest.mark.parametrize('name,kwargs', [
    ('ba_mobilenetv3_small_100', {}),  # gate before the activation, hard-sigmoid
    ('ba_efficientnet_b0', {'drop_path_rate': 0.2}),  # gate after the activation, drop-path
    ('ba_regnety_040', dict(w0=24, wa=36.44, wm=2.49, group_size=8, depth=13, drop_path_rate=0.2)),
])
def test_fast_mbconv_and_regnet_step_equals_straightforward_step(name, kwargs):
    """The MBConv and RegNet bridges (bridge_pool, channel_gate) train as the mean and the plain product do."""
    from banet.models import BAInvertedResidual, BARegNetBottleneck
    torch.manual_seed(0)
    fast = timm.create_model(name, num_classes=10, **kwargs).train().double()
    ref = as_reference_model(fast).double()
    for n, m in ref.named_modules():  # the reference bridges take ReLU and sigmoid: give them the models' own
        if isinstance(m, ReferenceBridgeAttention):
            m.act, m.gate = (copy.deepcopy(getattr(fast.get_submodule(n), a)) for a in ('act', 'gate'))
    straight = {BAInvertedResidual: _straight_inverted_residual, BARegNetBottleneck: _straight_regnet}
    blocks = [m for m in ref.modules() if type(m) in straight]
    assert blocks
    for m in blocks:
        m.forward = types.MethodType(straight[type(m)], m)
    _assert_same_training_step(fast, ref, 64)


@pytest.mark.parametrize('name', ['ba_resnet50', 'bav1_resnet50'])
@pytest.mark.parametrize('form', ['eval', 'fused', 'frozen'])
def test_eval_bottleneck_pools_its_widest_map_through_conv3(name, form, monkeypatch):
    """In eval mode a bottleneck's last pooled feature is conv3 + bn3 applied to the pooled conv3 input (both act
    per pixel), equal to pooling the map itself and one pass fewer: two poolings per block instead of three."""
    torch.manual_seed(0)
    model = _randomise_norms(timm.create_model(name, num_classes=10)).eval()
    ref = as_reference_model(copy.deepcopy(model)).eval()
    if form == 'fused':
        banet.fuse(model)
    elif form == 'frozen':
        banet.freeze_norms(model)
    x = torch.randn(2, 3, 64, 64)
    calls = []
    pool = banet.models.ba_resnet.bridge_pool
    monkeypatch.setattr(banet.models.ba_resnet, 'bridge_pool', lambda t: calls.append(t) or pool(t))
    with torch.no_grad():
        got, expected = model(x), ref(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert len(calls) == 2 * len([m for m in model.modules() if isinstance(m, banet.BABottleneck)])
