"""Conversion of official-layout checkpoints: layout detection, strict loading and logit parity."""
import re

import pytest
import timm
import torch
from safetensors.torch import load_file

from banet import convert_official, detect_layout
from banet.cli import main
from official_reference import LAYOUTS, OfficialResNet, randomize_

# layout -> the banet family it converts to
TARGET = {'bav1': 'bav1_resnet', 'bav2_v1': 'bav1_resnet', 'bav2_v2_1': 'ba_resnet'}
DEPTH_LAYERS = {18: ([2, 2, 2, 2], False), 50: ([3, 4, 6, 3], True)}


def _official(layout, depth, num_classes=1000):
    layers, bottleneck = DEPTH_LAYERS[depth]
    return randomize_(OfficialResNet(layout, layers, bottleneck, num_classes))


@pytest.mark.parametrize('depth', [18, 50])
@pytest.mark.parametrize('layout', LAYOUTS)
def test_logit_parity(layout, depth):
    ref = _official(layout, depth)
    sd = ref.state_dict()
    assert detect_layout(sd) == layout
    model = timm.create_model(f'{TARGET[layout]}{depth}').eval()
    model.load_state_dict(convert_official(sd), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = ref(x), model(x)
    assert expected.abs().mean() > 0.1  # a meaningful, non-degenerate output
    assert (expected - got).abs().max() <= 1e-4
    # the bridges matter: breaking one changes the logits, so parity is not vacuous
    with torch.no_grad():
        model.layer4[1].ba.fc.weight.mul_(-1)
        assert (model(x) - expected).abs().max() > 1e-3


@pytest.mark.parametrize('wrap', [
    lambda sd: {'model': sd},
    lambda sd: {'state_dict': {f'module.{k}': v for k, v in sd.items()}, 'epoch': 3},
    lambda sd: {f'module.{k}': v for k, v in sd.items()},
])
def test_wrapped_and_prefixed(wrap):
    sd = _official('bav2_v2_1', 18).state_dict()
    plain = convert_official(sd)
    wrapped = convert_official(wrap(sd))
    assert plain.keys() == wrapped.keys() and all(torch.equal(plain[k], wrapped[k]) for k in plain)


def test_banet_state_dict_passes_through():
    sd = timm.create_model('ba_resnet18').state_dict()
    assert detect_layout(sd) == 'banet'
    assert convert_official(sd).keys() == sd.keys()


def test_not_a_ba_checkpoint():
    with pytest.raises(ValueError, match='no bridge-attention weights'):
        convert_official(timm.create_model('resnet18').state_dict())


def test_cli_convert_end_to_end(tmp_path, capsys):
    ref = _official('bav1', 18, num_classes=10)
    src = tmp_path / 'official.pth.tar'
    torch.save({'epoch': 90, 'state_dict': {f'module.{k}': v for k, v in ref.state_dict().items()}}, src)
    out = tmp_path / 'bav1_r18.safetensors'
    assert main(['convert', str(src), '--model', 'bav1_resnet18', '--out', str(out)]) == 0
    assert 'layout bav1' in capsys.readouterr().out
    model = timm.create_model('bav1_resnet18', num_classes=10).eval()
    model.load_state_dict(load_file(str(out)), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= 1e-4


@pytest.mark.parametrize('model,match', [
    ('ba_resnet18', 'is a BAv1 checkpoint .* choose a bav1_resnet'),
    ('bav1_resnet34', 'do not fit bav1_resnet34'),
    ('nope_resnet', "unknown model 'nope_resnet'"),
])
def test_cli_convert_errors(tmp_path, capsys, model, match):
    src = tmp_path / 'official.pth'
    torch.save(_official('bav2_v1', 18).state_dict(), src)
    out = tmp_path / 'out.safetensors'
    assert main(['convert', str(src), '--model', model, '--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('banet convert: error:') and len(err.strip().splitlines()) == 1
    assert re.search(match, err), err
    assert not out.exists()


def test_cli_convert_refuses_untrusted_pickle(tmp_path, capsys):
    import argparse
    sd = _official('bav2_v2_1', 18).state_dict()
    src = tmp_path / 'with_objects.pth'
    torch.save({'state_dict': sd, 'args': argparse.Namespace(lr=0.1)}, src)
    out = tmp_path / 'out.safetensors'
    argv = ['convert', str(src), '--model', 'ba_resnet18', '--out', str(out)]
    assert main(argv) == 2 and '--trust-pickle' in capsys.readouterr().err and not out.exists()
    assert main(argv + ['--trust-pickle']) == 0 and out.exists()
