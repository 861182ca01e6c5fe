"""TorchScript: every registered banet model scripts and gives its eager outputs, as timm's own models script.

After timm's ``test_model_forward_torchscript``, ``test_model_forward_fx_torchscript`` and
``test_model_forward_torchscript_with_features_fx``, but comparing values with the eager model, not only shapes. The
models are created as users create them (no ``timm.set_scriptable``); the big ones in cheaper configurations that
keep their block classes and code paths.
"""
import io

import pytest
import timm
import torch

import banet
from banet.models import MODEL_MODULES

pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit.script` is deprecated:FutureWarning')

MODELS = sorted(timm.list_models(module=list(MODEL_MODULES)))
# fewer blocks (two in stage 1: a block with and one without a downsample), narrower, smaller images
_RESNET = dict(layers=(2, 1, 1, 1))
CHEAP = {
    **{n: _RESNET for n in MODELS if n.startswith(('ba_resnet', 'bav1_resnet', 'ba_resnext')) and 'cifar' not in n},
    'ba_convnext_tiny': dict(depths=(1, 2, 1, 1), dims=(32, 64, 128, 256)),
    'ba_swin_tiny_patch4_window7_224': dict(
        img_size=64, window_size=4, embed_dim=32, depths=(2, 1, 1, 1), num_heads=(1, 2, 4, 8)),
    'ba_regnety_040': dict(w0=24, wa=36.44, wm=2.49, group_size=8, depth=13),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Compiling is serial, and small forwards gain nothing from a second thread (on a shared CPU, it spins)."""
    torch.set_num_threads(1)


def _create(name, **kwargs):
    return timm.create_model(name, **{**CHEAP.get(name, {}), **kwargs}).eval()


def _input(name, batch=2, chans=3):
    size = 32 if name.endswith('_cifar') else 64
    return torch.randn(batch, chans, size, size)


def _run(model, x):
    """Eval-mode outputs; scripted code runs as compiled (the profiling executor's first-run passes take seconds)."""
    with torch.no_grad(), torch.jit.optimized_execution(False):
        return model(x)


def _assert_same(got, expected):
    if isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e)
    else:
        torch.testing.assert_close(got, expected)


def test_registry_is_covered():
    assert len(MODELS) == 35 and set(CHEAP) <= set(MODELS)


def _assert_converted_equals_eager(name, convert, **kwargs):
    model = _create(name, **kwargs)
    x = _input(name)
    _assert_same(_run(convert(model), x), _run(model, x))


def _script_saved_and_loaded(model):
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


@pytest.mark.parametrize('name, kwargs', [pytest.param(n, {}, id=n) for n in MODELS] + [
    # the blocks' drop-path branches (a separate add instead of the fused gate-and-add)
    pytest.param(n, dict(drop_path_rate=0.1), id=f'{n}-drop_path') for n in ('ba_resnet18', 'ba_regnety_040')])
def test_script_equals_eager(name, kwargs):
    _assert_converted_equals_eager(name, torch.jit.script, **kwargs)


@pytest.mark.parametrize('name', ['ba_resnet20_cifar', 'ba_mobilenetv3_small_100', 'ba_swin_tiny_patch4_window7_224'])
def test_saved_script_loads_and_equals_eager(name):
    """Nothing is left to Python (``torch.jit.ignore``): the scripted model saves, loads and runs on its own."""
    _assert_converted_equals_eager(name, _script_saved_and_loaded)


@pytest.mark.parametrize('name', ['ba_resnet20_cifar', 'ba_mobilenetv3_small_100', 'ba_swin_tiny_patch4_window7_224'])
def test_fx_then_script_equals_eager(name):
    _assert_converted_equals_eager(name, lambda model: torch.jit.script(torch.fx.symbolic_trace(model)))


@pytest.mark.parametrize('name', ['bav1_resnet18', 'ba_regnety_040'])
def test_timm_fx_features_script_equal_eager(name):
    """timm's FX feature extractor (``feature_cls='fx'``: the banet functions stay single call nodes) scripts."""
    _assert_converted_equals_eager(name, torch.jit.script, features_only=True, feature_cls='fx')


def test_scripted_models_keep_their_checks():
    """The input-channel check runs inside scripted models, direct or through FX; so does the bridges' batch-of-one
    check through FX (scripted directly, BatchNorm1d raises its own error)."""
    model = _create('ba_resnet20_cifar')
    scripted, traced = torch.jit.script(model), torch.jit.script(torch.fx.symbolic_trace(model.train()))
    for m in (scripted.eval(), traced):
        with pytest.raises(Exception, match=r'expects \(batch, 3, height, width\) input, got 1 channels'):
            m(_input('ba_resnet20_cifar', chans=1))
    with pytest.raises(Exception, match='cannot train on a batch of 1'):
        traced(_input('ba_resnet20_cifar', batch=1))
    with pytest.raises(Exception, match='more than 1 value per channel'):
        scripted.train()(_input('ba_resnet20_cifar', batch=1))


def test_fused_and_frozen_models_script():
    x = _input('bav1_resnet20_cifar')
    for model in (banet.fuse(_create('bav1_resnet20_cifar')), banet.freeze_norms(_create('bav1_resnet20_cifar'))):
        _assert_same(_run(torch.jit.script(model), x), _run(model, x))
    frozen = banet.freeze_norms(_create('ba_resnet20_cifar')).train()
    _assert_same(_run(torch.jit.script(frozen), x[:1]), _run(frozen, x[:1]))  # frozen norms: a batch of one trains
