"""banet.add_bridge_attention: existing timm / torchvision ResNets and ResNeXts turned into BA networks in place."""
import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models import resnet as tm
from torch import nn
from torchvision.models import resnet as tv

import banet
from banet import BABasicBlock, BABottleneck, BridgeAttention, add_bridge_attention
from banet.models.retrofit import TVBABasicBlock, TVBABottleneck

# small versions of each kind: (constructor, the BA block class its blocks become)
KINDS = {
    'timm_basic': (lambda: tm.ResNet(tm.BasicBlock, (1, 1, 1, 1), num_classes=5), BABasicBlock),
    'timm_resnext': (lambda: tm.ResNet(tm.Bottleneck, (1, 1, 1, 1), cardinality=4, base_width=16, num_classes=5),
                     BABottleneck),
    'tv_basic': (lambda: tv.ResNet(tv.BasicBlock, [1, 1, 1, 1], num_classes=5), TVBABasicBlock),
    'tv_resnext': (lambda: tv.ResNet(tv.Bottleneck, [1, 1, 1, 1], groups=4, width_per_group=16, num_classes=5),
                   TVBABottleneck),
}


def _pretrained(kind, seed=0):
    """A small network of ``kind`` with every weight and norm statistic set (standing in for a pretrained one)."""
    torch.manual_seed(seed)
    model = KINDS[kind][0]()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.1)
    return model.eval()


def _blocks(model):
    return [m for m in model.modules() if type(m) in (tm.BasicBlock, tm.Bottleneck, tv.BasicBlock, tv.Bottleneck)]


def _bridges(model):
    return [m for m in model.modules() if isinstance(m, BridgeAttention)]


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_original_weights_and_modules_unchanged(kind):
    model = _pretrained(kind)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = dict(model.named_parameters())
    blocks = _blocks(model)
    assert add_bridge_attention(model) is model
    after = model.state_dict()
    assert {k for k in after if '.ba.' not in k} == set(before)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert all(p is params[n] for n, p in model.named_parameters() if '.ba.' not in n)  # same tensors
    # the same block objects, now of the BA class, each with one bridge over its convolutions
    assert all(type(b) is KINDS[kind][1] for b in blocks) and _blocks(model) == []
    assert [b.ba for b in blocks] == _bridges(model)
    assert all(len(b.ba.in_channels) == (2 if 'basic' in kind else 3) for b in blocks)


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_output_changes_only_through_the_gates(kind):
    model = _pretrained(kind)
    reference = copy.deepcopy(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        add_bridge_attention(model)
        assert not torch.allclose(model(x), expected, atol=1e-3)  # the fresh gates (about 0.5) do act
        for bridge in _bridges(model):  # a gate of exactly 1 everywhere gives back the original network
            bridge.register_forward_hook(lambda m, args, out: torch.ones_like(out))
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kind', ['timm_resnext', 'tv_basic'])
@pytest.mark.parametrize('version', ['v1', 'v2'])
def test_bridges_start_from_pytorch_defaults(kind, version):
    """Seeded retrofitting creates exactly the bridges that fresh BridgeAttention layers would be (default init)."""
    model = _pretrained(kind)
    widths = [[b.bn1.num_features, b.bn2.num_features] + ([b.bn3.num_features] if hasattr(b, 'bn3') else [])
              for b in _blocks(model)]
    torch.manual_seed(7)
    add_bridge_attention(model, version=version, reduction=8)
    torch.manual_seed(7)
    fresh = [BridgeAttention(w, w[-1], version=version, reduction=8) for w in widths]
    for got, want in zip(_bridges(model), fresh):
        assert got.version == version and got.hidden == want.channels // 8
        for (k, a), (_, b) in zip(got.state_dict().items(), want.state_dict().items()):
            assert torch.equal(a, b), k


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_retrofitted_model_trains(kind):
    model = add_bridge_attention(_pretrained(kind)).train()
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 5
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    learned = [p for b in _bridges(model) for p in [*b.proj.parameters(), b.fc.weight]]
    bridge_before = [p.detach().clone() for p in learned]
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(not torch.equal(a, b) for a, b in zip(bridge_before, learned))  # the bridges learn too


@pytest.mark.parametrize('source', ['timm', 'torchvision'])
def test_retrofitted_resnet18_is_ba_resnet18(source):
    """A retrofitted ResNet-18 has ba_resnet18's exact layout: its state dict loads strictly, same outputs."""
    plain = timm.create_model('resnet18', num_classes=10) if source == 'timm' else tv.resnet18(num_classes=10)
    model = add_bridge_attention(plain).eval()
    ba = timm.create_model('ba_resnet18', num_classes=10).eval()
    ba.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ba(x), model(x))


def test_bridges_follow_the_model_device_and_dtype():
    model = add_bridge_attention(_pretrained('tv_basic').double())
    assert all(p.dtype == torch.float64 for b in _bridges(model) for p in b.parameters())
    assert model(torch.randn(2, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64


def test_bad_arguments_leave_the_model_unchanged():
    model = _pretrained('timm_basic')
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match='unknown bridge attention version'):
        add_bridge_attention(model, version='v3')
    with pytest.raises(ValueError, match='reduction'):
        add_bridge_attention(model, reduction=1000)
    assert len(_blocks(model)) == 4 and not _bridges(model)
    assert model.state_dict().keys() == before.keys()


def test_unsupported_models_are_clear_errors():
    with pytest.raises(ValueError, match='attention module.*attn_layer'):
        add_bridge_attention(tm.ResNet(tm.BasicBlock, (1, 1, 1, 1), block_args=dict(attn_layer='se')))
    with pytest.raises(ValueError, match='found no ResNet block.*ba_convnext_tiny'):
        add_bridge_attention(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    twice = add_bridge_attention(_pretrained('tv_basic'))
    with pytest.raises(ValueError, match='found no ResNet block'):
        add_bridge_attention(twice)
    assert banet.add_bridge_attention is add_bridge_attention
