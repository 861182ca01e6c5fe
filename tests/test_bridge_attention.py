"""BridgeAttention against the formulas of the issue, the official initialisation, and its errors."""
import copy

import pytest
import torch
from torch import nn

from banet import BridgeAttention
from official_reference import OfficialBridge

WIDTHS = [8, 12, 32]


def _pooled(batch=4, widths=WIDTHS):
    return [torch.randn(batch, c) for c in widths]


def _formula(ba: BridgeAttention, pooled):
    """The maths written out term by term (eval mode, running statistics)."""
    def bn(norm, t):
        return (t - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps) * norm.weight + norm.bias

    u = [s @ p.weight.T for p, s in zip(ba.proj, pooled)]
    if ba.version == 'v1':
        z = sum(bn(n, ui) for n, ui in zip(ba.proj_norm, u))
    else:
        alpha, beta = ba.select.weight[0], ba.select.bias[0]
        z = bn(ba.norm, sum(a * ui for a, ui in zip(alpha, u)) + beta)
    return torch.sigmoid(torch.relu(z) @ ba.fc.weight.T)[:, :, None, None]


@pytest.mark.parametrize('version', ['v1', 'v2'])
def test_matches_formula(version):
    ba = BridgeAttention(WIDTHS, 32, version=version, reduction=4)
    for m in ba.modules():  # non-trivial statistics and affine parameters
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            nn.init.normal_(m.weight, 1, 0.3)
            nn.init.normal_(m.bias, 0, 0.3)
    ba.eval()
    pooled = _pooled()
    gate = ba(pooled)
    assert gate.shape == (4, 32, 1, 1)
    torch.testing.assert_close(gate, _formula(ba, pooled))
    # pooled maps of shape (B, C, 1, 1) are accepted as the official code passes them
    torch.testing.assert_close(ba([p[:, :, None, None] for p in pooled]), gate)


@pytest.mark.parametrize('version,layout', [('v1', 'bav1'), ('v1', 'bav2_v1'), ('v2', 'bav2_v2_1')])
def test_default_init_equals_official(version, layout):
    torch.manual_seed(3)
    ours = BridgeAttention(WIDTHS, 32, version=version)
    torch.manual_seed(3)
    theirs = OfficialBridge(layout, WIDTHS, 32)
    ours_w = sorted((tuple(p.shape), p.sum().item()) for p in ours.parameters())
    theirs_w = sorted((tuple(p.shape), p.sum().item()) for p in theirs.parameters())
    assert ours_w == theirs_w


def test_hidden_width_is_plain_integer_division():
    ba = BridgeAttention([24, 40], 40, reduction=16)
    assert ba.hidden == 2 and ba.fc.weight.shape == (40, 2)
    assert BridgeAttention([64, 64, 256], 256).hidden == 16


@pytest.mark.parametrize('version', ['v1', 'v2'])
def test_gradients_reach_inputs_and_parameters(version):
    ba = BridgeAttention(WIDTHS, 32, version=version, reduction=4).train()
    pooled = [p.requires_grad_() for p in _pooled()]
    ba(pooled).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pooled)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in ba.parameters())


def test_batch_of_one_in_training_is_a_clear_error():
    ba = BridgeAttention(WIDTHS, 32).train()
    with pytest.raises(ValueError, match='batch of 1.*drop_last=True'):
        ba(_pooled(batch=1))
    ba.eval()
    assert ba(_pooled(batch=1)).shape == (1, 32, 1, 1)


@pytest.mark.parametrize('kwargs,match', [
    (dict(in_channels=[8], channels=8, version='v3'), 'unknown bridge attention version'),
    (dict(in_channels=[8], channels=8, reduction=16), 'use a reduction <= 8'),
    (dict(in_channels=[], channels=32), 'at least one bridged feature'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BridgeAttention(**kwargs)


def test_wrong_number_of_features():
    with pytest.raises(ValueError, match='expects 3 bridged features, got 2'):
        BridgeAttention(WIDTHS, 32).eval()(_pooled()[:2])


class CustomBlock(nn.Module):
    """The README's example: bridge attention in a user's own block."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.ba = BridgeAttention([c, c], c, version='v2')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        s1 = y.mean((2, 3))
        y = self.bn2(self.conv2(y))
        y = y * self.ba([s1, y.mean((2, 3))])
        return torch.relu(x + y)


def test_custom_block_example():
    block = CustomBlock(32)
    x = torch.randn(2, 32, 8, 8)
    y = block(x)
    y.mean().backward()
    assert y.shape == x.shape and block.ba.select.weight.grad is not None


@pytest.mark.filterwarnings('ignore:`torch.jit.script` is deprecated:FutureWarning')
@pytest.mark.parametrize('version', ['v1', 'v2'])
@pytest.mark.parametrize('training', [True, False])
def test_scripted_equals_eager(version, training):
    """TorchScript compiles each version's own branch; values and running statistics follow the eager layer."""
    ba = BridgeAttention(WIDTHS, 32, version=version, reduction=4).train(training)
    scripted = torch.jit.script(copy.deepcopy(ba))
    pooled = _pooled()
    torch.testing.assert_close(scripted(pooled), ba(pooled))
    for b, s in zip(ba.buffers(), scripted.buffers()):
        torch.testing.assert_close(s, b)
    fused = ba.eval().fuse()
    torch.testing.assert_close(torch.jit.script(fused)(pooled), fused(pooled))
