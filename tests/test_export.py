"""banet export: ONNX (checked with ONNX Runtime) and TorchScript, parity with PyTorch, atomic output, errors."""
import copy
import json
import warnings

import numpy as np
import pytest
import torch

import banet
from banet.deploy import export as export_mod
from banet.cli import main
from banet.deploy.export import check_inputs, compare_outputs, export_model, torchscript_runner

from _deploy import LABELS, save_tiny, write_images


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp('export') / 'saved')


def test_onnx_export_matches_pytorch_with_a_dynamic_batch(saved, tmp_path, capsys):
    ort = pytest.importorskip('onnxruntime')
    onnx = pytest.importorskip('onnx')
    pytest.importorskip('onnxscript')
    images = write_images(tmp_path / 'imgs')
    out = tmp_path / 'model.onnx'
    assert main(['export', '--model', str(saved), '--format', 'onnx', '--output', str(out),
                 '--images', str(tmp_path / 'imgs')]) == 0
    printed = capsys.readouterr().out
    assert 'ONNX Runtime vs PyTorch, max abs difference: random' in printed and 'real' in printed

    proto = onnx.load(str(out))
    assert max(o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx')) >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta['label_names']) == LABELS and json.loads(meta['data_config'])['input_size'] == [1, 16, 16]
    # independent check: ONNX Runtime against the saved model in PyTorch, on a batch size never exported
    model = banet.load_pretrained(saved)
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    x = torch.randn(5, 1, 16, 16)
    with torch.no_grad():
        want = model(x).numpy()
    got = session.run(None, {'input': x.numpy()})[0]
    assert got.shape == (5, 4) and np.abs(got - want).max() <= 1e-4
    # the bridges were fused: no BridgeAttention weights (bn/select) survive in the graph
    assert not any('select' in init.name or '.ba.norm' in init.name for init in proto.graph.initializer)
    assert len(images) == 4


@pytest.fixture(scope='module')
def torchscript(saved, tmp_path_factory):
    """(model, its checked TorchScript export, the export's report)."""
    model = banet.load_pretrained(saved)
    path = tmp_path_factory.mktemp('ts') / 'model.pt'
    return model, path, export_model(model, path, 'torchscript')


def test_torchscript_export_loads_back_and_matches(torchscript):
    model, path, report = torchscript
    assert report['fused'] and set(report['max_abs_diff']) == {'random', 'image-like'}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        loaded = torch.jit.load(str(path))
    x = torch.randn(7, 1, 16, 16)
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max() <= 1e-4
    assert not any(isinstance(m, banet.FusedBridgeAttention) for m in model.modules())  # the input is untouched


def test_a_mismatch_is_caught_and_reported(torchscript):
    model, path, _ = torchscript
    model = copy.deepcopy(model)
    run = torchscript_runner(path)
    inputs = check_inputs(model)
    assert max(compare_outputs(model, run, inputs, 1e-4).values()) <= 1e-4
    with torch.no_grad():
        model.fc.bias[2] += 1e-2  # the reference drifts from the exported file by 1e-2 on one logit
    with pytest.raises(RuntimeError, match=r'differs from PyTorch by 0.01 \(> --atol 0.0001\).*not written'):
        compare_outputs(model, run, inputs, 1e-4)


def test_a_broken_export_never_replaces_the_output(saved, tmp_path, monkeypatch, capsys):
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'model.onnx'
    out.write_bytes(b'the previous export')

    def broken(model, example, path, opset, meta):
        with open(path, 'wb') as f:
            f.write(b'not an onnx model')
    monkeypatch.setattr(export_mod, '_write_onnx', broken)
    assert main(['export', '--model', str(saved), '--output', str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('banet export: error: ONNX Runtime cannot load the exported model')
    assert out.read_bytes() == b'the previous export'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.onnx']  # no temporary file left


def test_export_argument_errors(saved, tmp_path, capsys):
    assert main(['export', '--model', str(saved), '--output', str(tmp_path / 'm.onnx'), '--opset', '13']) == 2
    assert 'use 17 or newer' in capsys.readouterr().err
    (tmp_path / 'x.txt').write_text('text')
    assert main(['export', '--model', str(saved), '--output', str(tmp_path / 'm.pt'), '--format', 'torchscript',
                 '--images', str(tmp_path / 'x.txt')]) == 2
    captured = capsys.readouterr()
    assert 'skipped' in captured.out and 'none of --images could be read' in captured.err
    assert not (tmp_path / 'm.onnx').exists() and not (tmp_path / 'm.pt').exists()
    with pytest.raises(ValueError, match='the real inputs have 3 channels; the model takes 1'):
        export_model(banet.load_pretrained(saved), tmp_path / 'm.pt', 'torchscript',
                     real_inputs=torch.randn(2, 3, 16, 16))
