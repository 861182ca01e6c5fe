"""banet inspect: bridge gate statistics and BAv2 alpha via hooks, Grad-CAM, and the written JSON/PNG files."""
import json

import pytest
import torch
from PIL import Image

import banet
from banet.cli import main
from banet.deploy.explain import bridge_modules, grad_cam, heatmap, record_bridges

from _deploy import save_tiny, tiny_model, write_images


def _reference_gate(ba: banet.BridgeAttention, pooled) -> torch.Tensor:
    """BAv2's gate written out from the parameters: σ(W_g ReLU(BN(Σ α_i W_i s_i + β)))."""
    alpha, beta = ba.select.weight[0], ba.select.bias[0]
    f = sum(a * s @ p.weight.T for a, s, p in zip(alpha, pooled, ba.proj)) + beta
    n = ba.norm
    f = (f - n.running_mean) / torch.sqrt(n.running_var + n.eps) * n.weight + n.bias
    return torch.sigmoid(torch.relu(f) @ ba.fc.weight.T)


def test_gate_statistics_and_alpha_match_the_parameters():
    model = tiny_model()
    x = torch.randn(3, 1, 16, 16)
    pooled = {}
    for name, m in bridge_modules(model):  # capture the bridges' inputs independently of the recorder
        m.register_forward_pre_hook(lambda mod, args, name=name: pooled.__setitem__(
            name, [t.flatten(1) for t in args[0]]))
    with torch.no_grad():
        want = model(x)
        logits, records = record_bridges(model, x)
    assert torch.equal(logits, want)  # recording changes nothing
    assert [r['block'] for r in records] == [f'layer{s}.{b}' for s in (1, 2, 3) for b in range(3)]
    assert [r['stage'] for r in records] == ['layer1'] * 3 + ['layer2'] * 3 + ['layer3'] * 3
    with torch.no_grad():
        for (name, m), r in zip(bridge_modules(model), records):
            gate = _reference_gate(m, pooled[name])
            assert gate.shape == (3, m.channels)
            assert r['mean'] == pytest.approx(gate.mean().item(), abs=1e-6)
            assert r['std'] == pytest.approx(gate.std(unbiased=False).item(), abs=1e-6)
            assert (r['min'], r['max']) == pytest.approx((gate.min().item(), gate.max().item()), abs=1e-6)
            assert r['alpha'] == m.select.weight[0].tolist() and len(r['alpha']) == 2
    assert all(not m._forward_hooks for _, m in bridge_modules(model))  # the recorder's hooks are gone


def test_grad_cam_equals_the_class_activation_map_of_a_pooled_linear_head():
    # with global average pooling and a linear classifier, d score / d A_k = w_ck / (h w) everywhere, so
    # Grad-CAM is ReLU(Σ_k w_ck A_k) / (h w): the CAM of Zhou et al. (2016), computed here without autograd
    model = tiny_model()
    x = torch.randn(2, 1, 16, 16)
    target = torch.tensor([1, 3])
    cam = grad_cam(model, x, target)
    with torch.no_grad():
        feats = model.forward_features(x)
        h, w = feats.shape[-2:]
        want = torch.relu(torch.einsum('bkhw,bk->bhw', feats, model.fc.weight[target])) / (h * w)
        probs = model(x).softmax(1)
    assert cam.maps.shape == (2, 4, 4) and torch.allclose(cam.maps, want, atol=1e-6)
    assert cam.classes.tolist() == [1, 3] and torch.allclose(cam.probs, probs[[0, 1], [1, 3]])
    assert all(p.grad is None for p in model.parameters())
    default = grad_cam(model, x)
    assert default.classes.tolist() == probs.argmax(1).tolist()
    heat = heatmap(cam.maps, (16, 16))
    assert heat.shape == (2, 16, 16) and heat.min() >= 0 and torch.allclose(heat.amax((1, 2)), torch.ones(2))


def test_inspect_cli_writes_json_and_pictures(tmp_path, capsys):
    saved = save_tiny(tmp_path / 'saved')
    write_images(tmp_path / 'imgs', n=2)
    out = tmp_path / 'out'
    assert main(['inspect', '--model', str(saved), str(tmp_path / 'imgs'), '--output-dir', str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[0] == 'block' and len(printed) == 1 + 9 + 1
    report = json.loads((out / 'bridges.json').read_text())
    assert len(report['bridges']) == 9 and len(report['predictions']) == 3
    assert report['predictions'][0]['label'] in ('shoe', 'shirt', 'bag', 'dress')
    for name in ('gates.png', 'alpha.png', 'gradcam.png'):
        with Image.open(out / name) as img:
            assert img.format == 'PNG' and img.size[0] > 100


def test_inspect_without_alpha_and_on_a_fused_model(tmp_path, capsys):
    saved = banet.save_pretrained(tiny_model('bav1_resnet20_cifar'), tmp_path / 'v1')
    write_images(tmp_path / 'imgs', n=1)
    assert main(['inspect', '--model', str(saved), str(tmp_path / 'imgs' / 'img0.png'),
                 '--output-dir', str(tmp_path / 'out')]) == 0
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['bridges.json', 'gates.png', 'gradcam.png']
    assert all(r['alpha'] is None for r in json.loads((tmp_path / 'out' / 'bridges.json').read_text())['bridges'])
    capsys.readouterr()
    with pytest.raises(ValueError, match='no BridgeAttention modules'):
        record_bridges(banet.fuse(tiny_model()), torch.randn(2, 1, 16, 16))
