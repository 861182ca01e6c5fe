"""bridge_pool and channel_gate: the same values and gradients as the plain mean and product they replace."""
import pytest
import torch

from banet.layers import bridge_pool, channel_gate


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_bridge_pool_equals_mean(memory_format):
    x = torch.randn(3, 5, 7, 6).contiguous(memory_format=memory_format).requires_grad_()
    ref = x.detach().clone().requires_grad_()
    out, out_ref = bridge_pool(x), ref.mean((2, 3))
    torch.testing.assert_close(out, out_ref)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_ref.backward(grad)
    torch.testing.assert_close(x.grad, ref.grad)


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_channel_gate_equals_product(memory_format, dtype):
    x = torch.randn(4, 6, 5, 3, dtype=dtype).contiguous(memory_format=memory_format).requires_grad_()
    g = torch.rand(4, 6, 1, 1, dtype=dtype, requires_grad=True)
    x_ref, g_ref = x.detach().clone().requires_grad_(), g.detach().clone().requires_grad_()
    out, out_ref = channel_gate(x, g), x_ref * g_ref
    torch.testing.assert_close(out, out_ref)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(g.grad, g_ref.grad)


def test_channel_gate_gradcheck_and_mixed_dtypes():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    g = torch.rand(2, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(channel_gate, (x, g))
    # a bfloat16 map gated by a float32 gate (autocast can produce this): gradients keep each input's dtype
    xb = torch.randn(2, 3, 4, 4, dtype=torch.bfloat16, requires_grad=True)
    gf = torch.rand(2, 3, 1, 1, requires_grad=True)
    channel_gate(xb, gf).sum().backward()
    assert xb.grad.dtype == torch.bfloat16 and gf.grad.dtype == torch.float32
    torch.testing.assert_close(gf.grad, xb.detach().float().sum((2, 3), keepdim=True), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_channel_gate_with_shortcut_equals_product_plus_add(memory_format):
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    g = torch.rand(2, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 4, 5, 5, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    refs = [t.detach().clone().requires_grad_() for t in (x, g, s)]
    out, out_ref = channel_gate(x, g, s), refs[2] + refs[0] * refs[1]
    torch.testing.assert_close(out, out_ref)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_ref.backward(grad)
    for t, r in zip((x, g, s), refs):
        torch.testing.assert_close(t.grad, r.grad)
    assert torch.autograd.gradcheck(channel_gate, (x.detach().requires_grad_(), g, s.detach().requires_grad_()))


@pytest.mark.filterwarnings('ignore:`torch.jit.script` is deprecated:FutureWarning')
def test_scripted_pool_and_gate_equal_eager():
    """Scripted, the pooling is the same code and the gate plain tensor ops: same values and gradients."""
    pool, gate = torch.jit.script(bridge_pool), torch.jit.script(channel_gate)
    x = torch.randn(2, 4, 5, 3, dtype=torch.float64, requires_grad=True)
    g = torch.rand(2, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 4, 5, 3, dtype=torch.float64, requires_grad=True)
    for args in ((x, g), (x, g, s)):
        out, ref = gate(*args), channel_gate(*args)
        torch.testing.assert_close(out, ref)
        grads = torch.autograd.grad(out.sum(), args)
        torch.testing.assert_close(grads, torch.autograd.grad(ref.sum(), args))
    out, ref = pool(x), bridge_pool(x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(torch.autograd.grad(out.sum(), x), torch.autograd.grad(ref.sum(), x))
