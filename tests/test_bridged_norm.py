"""The bridged norm (pool from the norm's statistics, gate inside the output pass) equals the straightforward block:
outputs, every gradient, running statistics, in every mode and layout; it saves no more than a plain block; under
SyncBatchNorm two processes equal one."""
import copy
import importlib
import os
import socket

import pytest
import timm
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from timm.layers import DropPath
from timm.models.resnet import BasicBlock, Bottleneck
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

import banet
from banet import BridgeAttention
from banet.layers import bridged_norm
from banet.layers.bridged_norm import _formula
from reference_bridge import as_reference_model

C, C_OTHER = 16, 8


def straightforward(x, norm, bridge, pooled, shortcut, drop_path=None):
    """The block as the papers write it: norm, mean pool, gate, drop-path, add."""
    y = norm(x)
    y = y * bridge(pooled + [y.mean((2, 3))])
    if drop_path is not None:
        y = drop_path(y)
    return y + shortcut


def _norm(kind, **kwargs):
    if kind == 'frozen':
        norm = FrozenBatchNorm2d(C)
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 1.5)
    elif kind == 'identity':
        return nn.Identity()
    else:
        norm = nn.BatchNorm2d(C, **kwargs)
        if norm.affine:
            nn.init.normal_(norm.weight, 1, 0.3)
            nn.init.normal_(norm.bias, 0, 0.3)
    if hasattr(norm, 'weight') and kind == 'frozen':
        norm.weight.normal_(1, 0.3)
        norm.bias.normal_(0, 0.3)
    return norm


def _inputs(dtype=torch.float64, n=4, size=(5, 6), channels_last=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, C, *size, generator=g, dtype=dtype) * 1.5 + 0.7
    other = torch.randn(n, C_OTHER, generator=g, dtype=dtype)
    shortcut = torch.randn(n, C, *size, generator=g, dtype=dtype)
    upstream = torch.randn(n, C, *size, generator=g, dtype=dtype)
    if channels_last:
        x, shortcut, upstream = (t.contiguous(memory_format=torch.channels_last) for t in (x, shortcut, upstream))
    return x, other, shortcut, upstream


def _step(fn, norm, bridge, inputs, drop_path=None, seed=1):
    """Forward and backward of ``relu(fn(...)) · upstream``; the output and every gradient, inputs' first."""
    x, other, shortcut, upstream = (t.clone().requires_grad_(i < 3) for i, t in enumerate(inputs))
    torch.manual_seed(seed)  # the same drop-path draws
    out = fn(x, norm, bridge, [other], shortcut, drop_path)
    (out.relu() * upstream).sum().backward()
    params = list(norm.parameters()) + list(bridge.parameters())
    return [out, x.grad, other.grad, shortcut.grad] + [p.grad for p in params]


def _pair(kind, version='v2', dtype=torch.float64, **norm_kwargs):
    torch.manual_seed(0)
    norm, bridge = _norm(kind, **norm_kwargs), BridgeAttention([C_OTHER, C], C, version=version, reduction=4)
    return (norm.to(dtype), bridge.to(dtype)), (copy.deepcopy(norm).to(dtype), copy.deepcopy(bridge).to(dtype))


def _close(got, expected, **tol):
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        assert (a is None) == (b is None), i
        if a is not None:
            torch.testing.assert_close(a, b, **tol, msg=lambda m: f'item {i}: {m}')


EXACT = dict(rtol=0, atol=1e-10)


@pytest.mark.parametrize('version', ['v1', 'v2'])
@pytest.mark.parametrize('norm_kwargs', [{}, {'momentum': None}, {'affine': False}, {'track_running_stats': False}],
                         ids=['momentum', 'cumulative', 'no-affine', 'no-running-stats'])
def test_training_steps_equal_the_straightforward_block(version, norm_kwargs):
    """Three float64 steps: outputs and every gradient to 1e-10, running mean, unbiased running variance and
    num_batches_tracked as nn.BatchNorm2d keeps them."""
    (norm, bridge), (ref_norm, ref_bridge) = _pair('bn', version, **norm_kwargs)
    for step in range(3):
        inputs = _inputs(n=4 + step, size=(5 + step, 6))
        _close(_step(bridged_norm, norm, bridge, inputs), _step(straightforward, ref_norm, ref_bridge, inputs), **EXACT)
    for got, expected in zip(norm.buffers(), ref_norm.buffers()):
        torch.testing.assert_close(got, expected, **EXACT)
    if norm.track_running_stats:
        assert int(norm.num_batches_tracked) == 3


@pytest.mark.parametrize('kind', ['bn', 'frozen', 'identity'])
def test_eval_frozen_and_folded_norms_equal_the_straightforward_block(kind):
    (norm, bridge), (ref_norm, ref_bridge) = _pair(kind)
    for m in (norm, bridge, ref_norm, ref_bridge):
        m.eval()
    inputs = _inputs()
    _close(_step(bridged_norm, norm, bridge, inputs), _step(straightforward, ref_norm, ref_bridge, inputs), **EXACT)


def test_drop_path_drops_the_same_samples():
    (norm, bridge), (ref_norm, ref_bridge) = _pair('bn')
    inputs = _inputs(n=8)
    got = _step(bridged_norm, norm, bridge, inputs, DropPath(0.5))
    expected = _step(straightforward, ref_norm, ref_bridge, inputs, DropPath(0.5))
    _close(got, expected, **EXACT)
    assert (got[0] - inputs[2]).flatten(1).abs().amax(1).eq(0).any()  # some samples are the shortcut alone


def test_the_compiled_formulation_equals_the_straightforward_block():
    """What torch.compile traces (plain tensor ops) has the same outputs, gradients and running statistics."""
    (norm, bridge), (ref_norm, ref_bridge) = _pair('bn')
    inputs = _inputs()
    _close(_step(_formula, norm, bridge, inputs), _step(straightforward, ref_norm, ref_bridge, inputs), **EXACT)
    _close(list(norm.buffers()), list(ref_norm.buffers()), **EXACT)


@pytest.mark.parametrize('per_sample', [False, True], ids=['product-and-sums', 'per-sample-kernels'])
def test_channels_last_float32_is_close_and_keeps_its_layout(per_sample, monkeypatch):
    if per_sample:  # the kernel call per sample that large maps take, on a small one
        monkeypatch.setattr(importlib.import_module('banet.layers.bridged_norm'), '_LOOP_MIN', 1)
    (norm, bridge), (ref_norm, ref_bridge) = _pair('bn', dtype=torch.float32)
    inputs = _inputs(torch.float32, n=3, size=(7, 7), channels_last=True)
    got = _step(bridged_norm, norm, bridge, inputs)
    _close(got, _step(straightforward, ref_norm, ref_bridge, inputs), rtol=1e-4, atol=1e-4)
    assert got[0].is_contiguous(memory_format=torch.channels_last)


def test_bf16_autocast_is_as_accurate_as_the_straightforward_block():
    """Under bfloat16 autocast, measured against the float64 truth: every output and gradient at least as close as
    the straightforward block's (up to 2 % of its scale), and the output and input gradient within 2 %."""
    (norm, bridge), (ref_norm, ref_bridge) = _pair('bn', dtype=torch.float32)
    (norm64, bridge64), _ = _pair('bn')
    x, other, shortcut, upstream = _inputs(torch.float32, size=(7, 7))
    inputs = (x.bfloat16(), other, shortcut.bfloat16(), upstream.bfloat16())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = _step(bridged_norm, norm, bridge, inputs)
        plain = _step(straightforward, ref_norm, ref_bridge, inputs)
    truth = _step(straightforward, norm64, bridge64, [t.double() for t in inputs])
    assert got[0].dtype == got[1].dtype == torch.bfloat16
    for i, (a, b, t) in enumerate(zip(got, plain, truth)):
        scale = t.abs().max()
        if scale < 1e-9:  # a bias before a BatchNorm1d: no gradient in exact arithmetic, only rounding noise
            continue
        err, plain_err = ((v.double() - t).abs().max() for v in (a, b))
        assert err <= plain_err + 0.02 * scale, i
        if i < 2:
            assert err <= 0.02 * scale


def test_one_value_per_channel_is_refused_as_batch_norm_does():
    (norm, bridge), _ = _pair('bn')
    x, other, shortcut, _ = _inputs(n=1, size=(1, 1))
    with pytest.raises(ValueError, match='more than 1 value per channel'):
        bridged_norm(x, norm, bridge, [other], shortcut)


_BA_RESNETS = sorted(n for n in timm.list_models(['ba_res*', 'bav1_res*']) if '152' not in n and '101' not in n)


@pytest.mark.parametrize('name', _BA_RESNETS)
def test_registry_ba_resnets_train_like_the_straightforward_blocks(name):
    """Every BA ResNet of the registry (basic, bottleneck, ResNeXt, D, small-input; the 101/152 have the same
    blocks): two float64 SGD steps with drop-path, then eval: outputs, every gradient, every buffer (running
    statistics included)."""
    torch.manual_seed(0)
    fast = timm.create_model(name, num_classes=5, drop_path_rate=0.1).double().train()
    ref = as_reference_model(fast).double()
    size = 16 if name.endswith('_cifar') else 64  # 2x2 maps in layer4: below that, batch norms amplify rounding
    x, y = torch.randn(4, 3, size, size, dtype=torch.float64), torch.randint(0, 5, (4,))
    for model in (fast, ref):
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        model.outs = []
        for _ in range(2):
            torch.manual_seed(1)
            out = model(x)
            opt.zero_grad()
            nn.functional.cross_entropy(out, y).backward()
            opt.step()
            model.outs.append(out.detach())
        model.grads = [p.grad for p in model.parameters()]
        with torch.no_grad():
            model.outs.append(model.eval()(x))
    _close(fast.outs[:2], ref.outs[:2], rtol=1e-8, atol=1e-9)
    # two steps of batch 3 leave running statistics that blow eval activations up (|out| ~ 1e4): relative there
    torch.testing.assert_close(fast.outs[2], ref.outs[2], rtol=1e-6, atol=1e-6 * ref.outs[2].abs().max().item())
    for got, expected in zip(fast.grads, ref.grads):  # relative to each gradient's scale (tiny batches amplify)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=max(1e-7 * expected.abs().max().item(), 1e-12))
    _close(list(fast.buffers()), list(ref.buffers()), rtol=1e-8, atol=1e-9)


def _saved_bytes(model, x):
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum().backward()
    return sum(seen.values())


def _activation_bytes(make, shape):
    """Saved bytes that grow with the batch: saved(batch 2n) − saved(batch n) (weights, and tensors made from them
    each step such as the bridge's concatenated projections, cancel)."""
    torch.manual_seed(0)
    model = make()
    n, *rest = shape
    return _saved_bytes(model, torch.randn(2 * n, *rest, requires_grad=True)) - _saved_bytes(
        model, torch.randn(n, *rest, requires_grad=True))


@pytest.mark.parametrize('block,plain', [('basic', BasicBlock), ('bottleneck', Bottleneck)])
def test_a_bridged_block_saves_what_the_plain_block_saves_plus_vectors(block, plain):
    """Counted on the tensors autograd saves: per sample, the BA block saves the plain block's tensors and a few
    (C,)-sized vectors (not one more map: the straightforward block also saved the norm's output and the gate)."""
    inplanes, n = (32 if block == 'basic' else 128), 4
    ba = banet.BABasicBlock if block == 'basic' else banet.BABottleneck
    shape = (n, inplanes, 14, 14)
    extra = _activation_bytes(lambda: ba(inplanes, 32), shape) - _activation_bytes(lambda: plain(inplanes, 32), shape)
    vectors = 16 * n * inplanes * 4  # 16 float32 (B, C) vectors
    assert 0 < extra <= vectors < n * inplanes * 14 * 14 * 4 / 10


def test_ba_resnet50_saves_within_5_percent_of_resnet50():
    shape = (2, 3, 64, 64)
    ratio = _activation_bytes(lambda: timm.create_model('ba_resnet50'), shape) / _activation_bytes(
        lambda: timm.create_model('resnet50'), shape)
    assert 1 < ratio <= 1.05


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _sync_worker(rank, world, port, inputs, state, out_file):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.set_num_threads(1)
    norm, bridge = nn.SyncBatchNorm(C).double(), BridgeAttention([C_OTHER, C], C, reduction=4).double().eval()
    norm.load_state_dict(state['norm'])
    bridge.load_state_dict(state['bridge'])
    part = [t.chunk(world)[rank] for t in inputs]
    results = _step(bridged_norm, norm, bridge, part)
    for g in results[4:]:
        if g is not None:
            dist.all_reduce(g)  # what DDP does with parameter gradients (summed: the loss is a sum)
    torch.save({'results': results, 'buffers': list(norm.buffers())}, f'{out_file}.{rank}')
    dist.destroy_process_group()


def test_sync_batch_norm_over_two_processes_equals_one_process_on_the_whole_batch(tmp_path):
    """Two gloo processes (CPU) with SyncBatchNorm: statistics and gradient sums all-reduced, so outputs, input
    gradients, summed parameter gradients and running statistics equal one BatchNorm2d on the whole batch."""
    torch.manual_seed(0)
    norm, bridge = nn.SyncBatchNorm(C).double(), BridgeAttention([C_OTHER, C], C, reduction=4).double().eval()
    nn.init.normal_(norm.weight, 1, 0.3)
    nn.init.normal_(norm.bias, 0, 0.3)
    state = {'norm': norm.state_dict(), 'bridge': bridge.state_dict()}
    inputs = _inputs(n=6)
    mp.start_processes(_sync_worker, args=(2, _free_port(), inputs, state, str(tmp_path / 'r')), nprocs=2,
                       start_method='spawn')
    parts = [torch.load(tmp_path / f'r.{r}') for r in range(2)]
    single_norm = nn.BatchNorm2d(C).double()
    single_norm.load_state_dict(state['norm'])
    expected = _step(straightforward, single_norm, bridge, inputs)
    got = [torch.cat([p['results'][i] for p in parts]) for i in range(4)] + parts[0]['results'][4:]
    _close(got, expected, **EXACT)
    _close(parts[0]['buffers'], list(single_norm.buffers()), **EXACT)
    _close(parts[1]['buffers'], list(single_norm.buffers()), **EXACT)


@pytest.mark.parametrize('name,kwargs,bridged', [
    ('ba_regnety_040', dict(w0=24, wa=36.44, wm=2.49, group_size=8, depth=13), True),  # conv3's norm has no act
    ('ba_mobilenetv3_small_100', {}, True),  # BAv1's MobileNetV3 gates bn2's output before the activation
    ('ba_efficientnet_b0', {}, False),  # gated after the activation: the pool of act(BN(x)) is not in the stats
])
def test_the_identity_is_used_where_it_holds_and_only_there(name, kwargs, bridged, monkeypatch):
    """In training, the RegNetY bridges and the gate-before-activation MBConv bridges take their pool from the
    norm's statistics (no straightforward pass runs); MBConv bridges gated after the activation pool the map."""
    module = importlib.import_module('banet.layers.bridged_norm')  # the module, not the function of that name
    calls = []
    monkeypatch.setattr(module, '_eager', lambda *a: calls.append(1) or module._plain(*a))
    model = timm.create_model(name, num_classes=10, **kwargs).train()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    blocks = [m for m in model.modules() if hasattr(m, 'ba') and isinstance(m.ba, BridgeAttention)]
    assert len(calls) == (len(blocks) if bridged else 0) and blocks
