"""Model tests over every registered banet model, in the spirit of timm's own model tests."""
import copy

import pytest
import timm
import torch
from timm.models.resnet import BasicBlock, Bottleneck
from torch import nn

import banet
from banet import BABasicBlock, BABottleneck, BridgeAttention

MODELS = sorted(timm.list_models(module=['ba_resnet', 'cifar_resnet']))  # other families: test_models_beyond.py
IMAGENET = [n for n in MODELS if not n.endswith('_cifar')]
CIFAR = [n for n in MODELS if n.endswith('_cifar')]
# the cheap representatives used where running every model adds nothing
SMALL = ['ba_resnet20_cifar', 'bav1_resnet20_cifar', 'ba_resnet18', 'ba_resnet50d']

PARAMS = {
    'ba_resnet18': 11_820_336, 'ba_resnet34': 22_033_968, 'ba_resnet50': 28_702_664,
    'ba_resnet101': 50_482_316, 'ba_resnet152': 68_421_712,
    'bav1_resnet18': 11_820_552, 'bav1_resnet34': 22_034_392, 'bav1_resnet50': 28_706_376,
    'bav1_resnet101': 50_490_312, 'bav1_resnet152': 68_433_480,
}


def _size(name):
    return 32 if name.endswith('_cifar') else 64


def _input(name, batch=2, chans=3):
    return torch.randn(batch, chans, _size(name), _size(name))


def test_registry_lists_every_family():
    expected = {f'ba_resnet{d}' for d in (18, 34, 50, 101, 152)} | {f'bav1_resnet{d}' for d in (18, 34, 50, 101, 152)}
    expected |= {'ba_resnext50_32x4d', 'ba_resnet50d'}
    expected |= {f'{p}resnet{d}_cifar' for d in (20, 56) for p in ('', 'se', 'eca', 'cbam', 'bav1_', 'ba_')}
    assert set(MODELS) == expected
    assert set(timm.list_models('ba_resnet*')) >= {n for n in expected if n.startswith('ba_resnet')}


@pytest.mark.parametrize('name', MODELS)
def test_default_cfg(name):
    cfg = timm.get_pretrained_cfg(name).to_dict()
    for key in ('input_size', 'mean', 'std', 'crop_pct', 'interpolation', 'first_conv', 'classifier'):
        assert cfg[key] is not None, key
    model = timm.create_model(name)
    assert model.pretrained_cfg['architecture'] == name
    first = model.get_submodule(cfg['first_conv'])
    assert isinstance(first, nn.Conv2d) and first.in_channels == 3
    assert model.get_submodule(cfg['classifier']) is model.get_classifier()


@pytest.mark.parametrize('name', sorted(PARAMS))
def test_exact_parameter_count(name):
    model = timm.create_model(name, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


@pytest.mark.parametrize('name', MODELS)
def test_forward_backward(name):
    model = timm.create_model(name, num_classes=7, drop_path_rate=0.1).train()
    out = model(_input(name, batch=4))  # BN over a batch of 2 maps any pair to (-1, 1): no gradient through it
    assert out.shape == (4, 7) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f'parameters without gradient: {no_grad[:5]}'
    bridges = [m for m in model.modules() if isinstance(m, BridgeAttention)]
    if bridges:  # every bridge actually learns (non-zero gradients into its projections)
        assert all(all(p.weight.grad.abs().sum() > 0 for p in b.proj) for b in bridges)


@pytest.mark.parametrize('name', SMALL + ['resnet20_cifar', 'seresnet20_cifar', 'ecaresnet20_cifar'])
def test_in_chans_and_num_classes(name):
    model = timm.create_model(name, in_chans=1, num_classes=3).eval()
    assert model(_input(name, chans=1)).shape == (2, 3)
    assert model.get_submodule(model.pretrained_cfg['first_conv']).in_channels == 1


@pytest.mark.parametrize('name', SMALL)
def test_wrong_input_channels_is_a_clear_error(name):
    model = timm.create_model(name).eval()
    with pytest.raises(ValueError, match=r'expects \(batch, 3, height, width\) input, got 1 channels.*in_chans=1'):
        model(_input(name, chans=1))


@pytest.mark.parametrize('name', SMALL)
def test_batch_of_one_in_training_is_a_clear_error(name):
    model = timm.create_model(name).train()
    with pytest.raises(ValueError, match='batch of 1'):
        model(_input(name, batch=1))
    assert model.eval()(_input(name, batch=1)).shape[0] == 1


@pytest.mark.parametrize('name', MODELS)
def test_features_only_matches_feature_info(name):
    model = timm.create_model(name, features_only=True).eval()
    feats = model(_input(name))
    info = model.feature_info
    assert [f.shape[1] for f in feats] == info.channels()
    assert [_size(name) // f.shape[-1] for f in feats] == info.reduction()


@pytest.mark.parametrize('name', SMALL)
def test_forward_intermediates(name):
    model = timm.create_model(name).eval()
    x = _input(name)
    final, inter = model.forward_intermediates(x)
    torch.testing.assert_close(final, model.forward_features(x))
    assert [t.shape[1] for t in inter] == [i['num_chs'] for i in model.feature_info]
    assert [_size(name) // t.shape[-1] for t in inter] == [i['reduction'] for i in model.feature_info]
    last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert len(last_two) == 2 and torch.equal(last_two[-1], inter[-1])
    pruned = model.prune_intermediate_layers(indices=1)
    assert pruned == [len(model.feature_info) - 1] or len(pruned) == 1


@pytest.mark.parametrize('name', SMALL)
def test_reset_classifier(name):
    model = timm.create_model(name).eval()
    model.reset_classifier(5)
    assert model(_input(name)).shape == (2, 5)
    model.reset_classifier(0)
    assert model(_input(name)).shape == (2, model.num_features)


@pytest.mark.parametrize('name', SMALL)
def test_seeded_determinism(name):
    outs = []
    for _ in range(2):
        torch.manual_seed(42)
        model = timm.create_model(name).eval()
        outs.append(model(torch.ones(2, 3, _size(name), _size(name))))
    assert torch.equal(outs[0], outs[1])


def test_timm_resnet_class_builds_ba_blocks():
    """The blocks keep timm's constructor signature: timm's own ResNet builds them, with its options."""
    from timm.models.resnet import ResNet
    model = ResNet(
        block=BABottleneck, layers=(1, 1, 1, 1), cardinality=4, base_width=16, stem_type='deep', avg_down=True,
        output_stride=16, drop_path_rate=0.2, block_args=dict(ba_version='v1')).eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1000)
    assert model.forward_features(torch.randn(2, 3, 64, 64)).shape[-1] == 64 // 16
    assert model.layer4[0].conv2.stride == (1, 1) and model.layer4[0].conv2.groups == 4
    assert model.layer4[0].ba.version == 'v1' and isinstance(model.layer4[0].drop_path, nn.Module)
    basic = ResNet(block=BABasicBlock, layers=(1, 1, 1, 1), aa_layer=timm.layers.BlurPool2d).eval()
    assert basic(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


def test_ba_blocks_refuse_a_second_attention():
    with pytest.raises(ValueError, match='attn_layer=None'):
        timm.create_model('ba_resnet18', block_args=dict(attn_layer='se'))


def test_resnext_and_d_variants_use_timm_options():
    x = timm.create_model('ba_resnext50_32x4d')
    assert x.layer1[0].conv2.groups == 32 and x.layer1[0].conv2.out_channels == 128
    d = timm.create_model('ba_resnet50d')
    assert isinstance(d.conv1, nn.Sequential) and isinstance(d.layer2[0].downsample[0], nn.AvgPool2d)


@pytest.mark.parametrize('name', ['ba_resnet20_cifar', 'ba_resnet18'])
def test_grad_checkpointing_gives_same_result(name):
    model = timm.create_model(name).eval()
    x = _input(name)
    ref = model(x)
    model.set_grad_checkpointing(True)
    torch.testing.assert_close(model(x), ref)


def test_cifar_models_differ_only_by_attention():
    plain, se, ba = (timm.create_model(f'{p}resnet20_cifar') for p in ('', 'se', 'ba_'))
    assert plain.conv1.kernel_size == (3, 3) and plain.conv1.stride == (1, 1)
    assert isinstance(plain.maxpool, nn.Identity)
    assert [len(getattr(plain, f'layer{i}')) for i in (1, 2, 3)] == [3, 3, 3]
    assert [i['num_chs'] for i in plain.feature_info] == [16, 16, 32, 64]
    assert type(se.layer1[0].se).__name__ == 'SEModule'
    assert type(timm.create_model('ecaresnet20_cifar').layer1[0].se).__name__ == 'EcaModule'
    assert type(timm.create_model('cbamresnet20_cifar').layer3[2].se).__name__ == 'CbamModule'
    assert len(timm.create_model('resnet56_cifar').layer2) == 9
    assert isinstance(ba.layer3[2].ba, BridgeAttention)


def test_fx_trace():
    model = timm.create_model('ba_resnet20_cifar').eval()
    traced = torch.fx.symbolic_trace(model)
    x = _input('ba_resnet20_cifar')
    torch.testing.assert_close(traced(x), model(x))
    with pytest.raises(ValueError, match='got 1 channels'):
        traced(_input('ba_resnet20_cifar', chans=1))
    names = timm.models.get_graph_node_names(model)[1]
    assert any('ba' in n for n in names)


def test_torch_compile():
    model = timm.create_model('ba_resnet20_cifar').eval()
    x = _input('ba_resnet20_cifar')
    assert torch._dynamo.explain(model.train())(x).graph_break_count == 0  # the input checks are guards, not breaks
    compiled = torch.compile(model.eval())
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


def test_freeze_norms():
    model = banet.freeze_norms(timm.create_model('bav1_resnet20_cifar'))
    norms = (nn.BatchNorm1d, nn.BatchNorm2d)
    assert not any(isinstance(m, norms) for m in model.modules())
    frozen = [m for m in model.modules() if isinstance(m, banet.FrozenBatchNorm1d)]
    assert len(frozen) == 2 * 9  # two bridged features per basic block, nine blocks
    assert not any('bn' in n or 'norm' in n for n, p in model.named_parameters())
    x = _input('bav1_resnet20_cifar')
    eval_out = model.eval()(x)
    torch.testing.assert_close(model.train()(x), eval_out)  # statistics no longer depend on the batch
    assert model.train()(x[:1]).shape == (1, 10)  # a batch of one can train with frozen norms


def test_frozen_bn1d_equals_eval_bn1d():
    bn = nn.BatchNorm1d(6)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    nn.init.normal_(bn.weight)
    frozen = banet.freeze_norms(nn.Sequential(bn))[0]
    x = torch.randn(4, 6)
    torch.testing.assert_close(frozen(x), bn.eval()(x))


def test_stage_methods_equal_timm_resnet():
    """BanetResNet runs its stages by name (as many as timm built, the CIFAR models' three too); with four, its
    features, intermediates and pruning are those of timm's own ResNet methods."""
    from timm.models.resnet import ResNet
    model = timm.create_model('ba_resnet50d', layers=(2, 1, 1, 1)).eval()
    x = _input('ba_resnet50d')
    torch.testing.assert_close(model.forward_features(x), ResNet.forward_features(model, x))
    for kwargs in ({}, dict(indices=[0, 2], stop_early=True), dict(indices=2, intermediates_only=True)):
        expected = ResNet.forward_intermediates(model, x, **kwargs)
        torch.testing.assert_close(model.forward_intermediates(x, **kwargs), expected)
    ours, timms = copy.deepcopy(model), copy.deepcopy(model)
    assert ours.prune_intermediate_layers(indices=[1]) == ResNet.prune_intermediate_layers(timms, indices=[1])
    assert str(ours) == str(timms) and ours.num_features == timms.num_features == 256
    torch.testing.assert_close(ours(x), timms(x))


@pytest.mark.parametrize('ba_block, plain, args', [(BABasicBlock, BasicBlock, (64, 64)),
                                                   (BABottleneck, Bottleneck, (256, 64))])
def test_block_constructor_equals_from_block(ba_block, plain, args):
    """Building a BA block and converting timm's block give the same block: same modules, bridge and weights."""
    torch.manual_seed(0)
    built = ba_block(*args, ba_version='v1', ba_reduction=8)
    torch.manual_seed(0)
    converted = ba_block.from_block(plain(*args), 'v1', 8)
    assert type(converted) is ba_block and str(converted) == str(built)
    assert converted.ba.in_channels == built.ba.in_channels == ((64, 64) if plain is BasicBlock else (64, 64, 256))
    built_sd, converted_sd = built.state_dict(), converted.state_dict()
    assert list(built_sd) == list(converted_sd)
    assert all(torch.equal(built_sd[k], converted_sd[k]) for k in built_sd)


def test_from_block_refuses_other_blocks():
    with pytest.raises(TypeError, match="expected timm's BasicBlock, got BABasicBlock"):
        BABasicBlock.from_block(BABasicBlock(64, 64))
    with pytest.raises(TypeError, match="expected timm's Bottleneck, got BasicBlock"):
        BABottleneck.from_block(BasicBlock(64, 64))
    with pytest.raises(ValueError, match='already has an attention module'):
        BABottleneck.from_block(Bottleneck(256, 64, attn_layer=timm.layers.SEModule))
