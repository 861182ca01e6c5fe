"""Detection: builders on plain and BA backbones, COCO data, COCO metrics, frozen norms, weights, the loop."""
import functools
import math

import pytest
import torch

pytest.importorskip('pycocotools')

import timm  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from torch import nn  # noqa: E402

from _coco_data import SIZE, write_coco  # noqa: E402
from banet.dense import collate_lists  # noqa: E402
from banet.detection import (DataError, CocoDetectionDataset, TimmFeatures, build_loader, coco_metrics,  # noqa: E402
                             create_detector, evaluate_detector, to_coco_results, train_transforms)
from banet.detection.trainer import DetectTask  # noqa: E402
from banet.runs import NonFiniteLossError, StepConfig, train_one_epoch  # noqa: E402
from banet.segmentation import semantic_mask  # noqa: E402

# small proposal/sample counts and a narrow FPN keep a 64 px step cheap on the CPU
SMALL = {
    'fasterrcnn': dict(rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=50,
                       rpn_post_nms_top_n_test=20, rpn_batch_size_per_image=64, box_batch_size_per_image=32,
                       box_detections_per_img=5),
    'retinanet': dict(topk_candidates=50, detections_per_img=5),
    'fcos': dict(topk_candidates=50, detections_per_img=5),
}
SMALL['maskrcnn'] = SMALL['fasterrcnn']


def tiny_detector(arch: str, backbone: str = 'ba_resnet18', **kwargs) -> nn.Module:
    options = dict(num_classes=3, min_size=SIZE, max_size=SIZE, fpn_channels=32, **SMALL[arch])
    return create_detector(arch, backbone, **{**options, **kwargs})


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    return write_coco(tmp_path_factory.mktemp('coco'))


@pytest.fixture(scope='module')
def batch(coco_root):
    """Image 1 (two objects) and image 3 (no object: detectors must train on empty targets too), with masks."""
    ds = CocoDetectionDataset(coco_root, 'train2017', masks=True)
    return collate_lists([ds[0], ds[2]])


def _step(model, images, targets, lr=0.01):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    model.train()
    losses = model(images, targets)
    loss = sum(losses.values())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return losses


@pytest.mark.parametrize('backbone', ['resnet18', 'ba_resnet18'])
@pytest.mark.parametrize('arch', ['fasterrcnn', 'maskrcnn', 'retinanet', 'fcos'])
def test_detector_trains_one_step_and_predicts(arch, backbone, batch):
    images, targets = batch
    model = tiny_detector(arch, backbone)
    assert model.backbone.out_channels == 32
    losses = _step(model, images, targets)
    assert losses and all(math.isfinite(v.item()) for v in losses.values())
    assert ('loss_mask' in losses) == (arch == 'maskrcnn')
    assert all(p.grad is not None for p in model.backbone.fpn.parameters())
    model.eval()
    with torch.no_grad():
        outputs = model(images)
    assert len(outputs) == 2 and targets[1]['boxes'].shape == (0, 4)
    for out in outputs:
        assert out['boxes'].shape[1:] == (4,) and len(out['boxes']) == len(out['scores']) == len(out['labels']) <= 5
        assert ('masks' in out) == (arch == 'maskrcnn')


def test_fasterrcnn_loss_falls_on_a_fixed_batch(batch):
    model = tiny_detector('fasterrcnn')
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.005, momentum=0.9)
    history = [_train_epoch(model, [batch], optimizer=optimizer)['train_loss'] for _ in range(5)]
    assert history[-1] < 0.75 * history[0], history


def test_levels_anchors_and_normalisation_follow_the_backbone():
    rcnn = tiny_detector('fasterrcnn')
    assert rcnn.backbone.strides == [4, 8, 16, 32, 64]  # torchvision's R-CNN levels: anchors 32..512
    assert rcnn.rpn.anchor_generator.sizes == ((32,), (64,), (128,), (256,), (512,))
    assert rcnn.transform.image_mean == list(timm.create_model('ba_resnet18').pretrained_cfg['mean'])
    fcos = tiny_detector('fcos', returned_stages=(-2, -1))
    assert fcos.backbone.strides == [16, 32, 64, 128]
    assert fcos.anchor_generator.sizes == ((16,), (32,), (64,), (128,))
    out = fcos.backbone(torch.randn(2, 3, SIZE, SIZE))
    assert list(out) == ['0', '1', 'p6', 'p7'] and out['0'].shape == (2, 32, SIZE // 16, SIZE // 16)


def test_bad_arch_or_backbone_is_one_clear_value_error():
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        create_detector('yolo', 'resnet18')
    with pytest.raises(ValueError, match="unknown timm model 'no_such_net'"):
        create_detector('fasterrcnn', 'no_such_net')
    with pytest.raises(ValueError, match="'inception_v3' cannot be built as a features_only extractor") as err:
        create_detector('fasterrcnn', 'inception_v3', backbone_kwargs=dict(aux_logits=True))
    assert '\n' not in str(err.value)
    with pytest.raises(ValueError, match='trainable_layers must be in'):
        TimmFeatures('resnet18', (1, 2), trainable_layers=6)
    with pytest.raises(ValueError, match='norm must be one of'):
        TimmFeatures('resnet18', (1, 2), norm='gn')


@pytest.mark.parametrize('trainable, first_trainable', [(0, None), (3, 'layer2'), (5, 'conv1')])
def test_trainable_layers_freeze_the_early_stages(trainable, first_trainable):
    features = TimmFeatures('ba_resnet18', (1, 2, 3, 4), trainable_layers=trainable, norm='bn')
    trainable_names = [n for n, p in features.body.named_parameters() if p.requires_grad]
    if first_trainable is None:
        assert not trainable_names
    else:
        order = ['conv1', 'bn1', 'layer1', 'layer2', 'layer3', 'layer4']
        expected = order[order.index(first_trainable):]
        assert sorted({n.split('.')[0] for n in trainable_names}) == sorted(expected)


def test_frozen_norms_stay_frozen_and_a_batch_of_one_trains(batch):
    images, targets = batch
    model = tiny_detector('fasterrcnn', trainable_layers=5, norm='frozen')
    body = model.backbone.features.body
    assert not [m for m in body.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    norms = [m for m in body.modules() if 'FrozenBatchNorm' in type(m).__name__]
    assert any(type(m).__name__ == 'FrozenBatchNorm1d' for m in norms)  # the bridges' 1-D norms
    assert not [p for m in norms for p in m.parameters()]
    stats = {k: v.clone() for k, v in body.state_dict().items() if 'running' in k or 'bn' in k}
    conv = body.conv1.weight.detach().clone()
    _step(model, images[:1], targets[:1])  # a BatchNorm1d in train mode would refuse a batch of one
    after = body.state_dict()
    assert stats and all(torch.equal(v, after[k]) for k, v in stats.items())
    assert not torch.equal(conv, body.conv1.weight)  # trainable_layers=5: the stem trains


def test_trainable_bn_refuses_a_batch_of_one(batch):
    images, targets = batch
    model = tiny_detector('fasterrcnn', norm='bn')
    with pytest.raises(ValueError, match='batch of 1'):
        _step(model, images[:1], targets[:1])


def test_backbone_weights_from_a_classification_state_dict():
    state = timm.create_model('ba_resnet18', num_classes=7).state_dict()  # any classifier size: it is dropped
    state.pop('layer1.0.ba.fc.weight')
    state['extra.weight'] = torch.zeros(3)
    model = tiny_detector('fasterrcnn', backbone_weights=state, norm='frozen')
    report = model.backbone.weights_report
    assert report.missing_keys == ['layer1.0.ba.fc.weight']
    assert report.unexpected_keys == ['extra.weight']
    loaded = model.backbone.features.body.state_dict()
    assert not [k for k in loaded if k.startswith('fc.')]
    common = [k for k in state if k in loaded]
    assert len(common) > 100 and 'layer4.1.ba.select.weight' in common and 'bn1.running_var' in common
    assert all(torch.equal(loaded[k], state[k]) for k in common)
    assert tiny_detector('fasterrcnn').backbone.weights_report is None


def test_backbone_weights_of_the_wrong_shape_are_refused():
    state = timm.create_model('resnet18').state_dict()
    state['conv1.weight'] = torch.zeros(64, 3, 3, 3)
    with pytest.raises(ValueError, match=r'1 shape mismatches, e.g. conv1.weight \(64, 3, 3, 3\)'):
        tiny_detector('retinanet', 'resnet18', backbone_weights=state)


# --- data -------------------------------------------------------------------------------------------------------

def test_missing_annotations_file_names_the_expected_path(tmp_path):
    with pytest.raises(DataError, match='instances_val2017.json') as err:
        CocoDetectionDataset(tmp_path, 'val2017')
    assert str(tmp_path / 'annotations' / 'instances_val2017.json') in str(err.value)
    assert '\n' not in str(err.value)


def test_crowd_degenerate_and_empty_images(coco_root):
    ds = CocoDetectionDataset(coco_root, 'train2017', masks=True)
    assert len(ds) == 4
    _, target = ds[1]  # one object, a crowd and a zero-width box
    assert target['boxes'].tolist() == [[30.0, 6.0, 54.0, 28.0]] and target['labels'].tolist() == [1]
    assert target['masks'].shape == (1, SIZE, SIZE) and target['iscrowd'].tolist() == [0]
    _, kept = CocoDetectionDataset(coco_root, 'train2017', drop_crowd=False)[1]
    assert kept['iscrowd'].tolist() == [0, 1] and kept['labels'].tolist() == [1, 2]  # zero-width box still dropped
    image, empty = ds[2]  # no annotation: kept, with empty targets
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32 and image.max() <= 1
    assert empty['boxes'].shape == (0, 4) and empty['labels'].shape == (0,) and empty['masks'].shape == (0, SIZE, SIZE)
    assert empty['image_id'] == 3
    assert [t['image_id'] for _, t in CocoDetectionDataset(coco_root, 'train2017', skip_empty=True)] == [1, 2, 4]


def test_boxes_and_masks_follow_the_flip(coco_root):
    _, plain = CocoDetectionDataset(coco_root, 'train2017', masks=True)[0]
    _, flipped = CocoDetectionDataset(coco_root, 'train2017', train_transforms(hflip=1.0), masks=True)[0]
    x0, y0, x1, y1 = plain['boxes'].unbind(1)
    assert torch.equal(flipped['boxes'], torch.stack([SIZE - x1, y0, SIZE - x0, y1], 1))
    assert torch.equal(flipped['masks'], plain['masks'].flip(-1))


def test_scale_jitter_keeps_masks_inside_boxes(coco_root):
    torch.manual_seed(3)
    ds = CocoDetectionDataset(coco_root, 'train2017', train_transforms(scale=(0.6, 1.4)), masks=True)
    for _, target in ds:
        for (x0, y0, x1, y1), mask in zip(target['boxes'].tolist(), target['masks']):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            if len(xs):
                assert xs.min() >= math.floor(x0) and xs.max() < math.ceil(x1) + 1
                assert ys.min() >= math.floor(y0) and ys.max() < math.ceil(y1) + 1


@pytest.mark.parametrize('workers', [0, 1])
def test_a_corrupt_image_is_one_line_naming_the_file(tmp_path, workers):
    root = write_coco(tmp_path, 'val2017', corrupt=True)
    batches = iter(build_loader(CocoDetectionDataset(root, 'val2017'), 5, train=False, num_workers=workers))
    with pytest.raises(DataError) as err:
        next(batches)
    if workers:
        batches._shutdown_workers()  # else torch's garbage-collected iterator waits 5 s for its worker
    message = str(err.value)
    assert message.startswith('cannot read image ') and str(root / 'val2017' / '5.png') in message
    assert '\n' not in message and 'Traceback' not in message


def test_train_loader_shuffles_and_drops_the_last_batch(coco_root):
    ds = CocoDetectionDataset(coco_root, 'train2017')
    train = build_loader(ds, 3, train=True, seed=0)
    assert len(train) == 1 and len(next(iter(train))[0]) == 3
    ids = [t['image_id'] for _, targets in build_loader(ds, 3, train=False) for t in targets]
    assert ids == [1, 2, 3, 4]
    epochs = {tuple(t['image_id'] for _, ts in build_loader(ds, 1, train=True, seed=s) for t in ts) for s in range(4)}
    assert len(epochs) > 1


def test_semantic_mask_from_instances(coco_root):
    coco = CocoDetectionDataset(coco_root, 'train2017').coco
    mask = semantic_mask(coco, 2)
    assert mask.shape == (SIZE, SIZE)
    assert (mask[6:28, 30:54] == 1).all()
    assert (mask[36:56, 4:24] == 255).all()  # the crowd region is ignored
    assert (mask == 0).sum() == SIZE * SIZE - 22 * 24 - 20 * 20
    assert (semantic_mask(coco, 3) == 0).all()


# --- COCO metrics ---------------------------------------------------------------------------------------------------

def _coco(annotations, images=(1,)):
    coco = COCO()
    coco.dataset = dict(images=[dict(id=i, width=200, height=200) for i in images], annotations=[
        dict(id=k + 1, image_id=a.get('image_id', 1), category_id=1, bbox=a['bbox'], iscrowd=a.get('iscrowd', 0),
             area=a['bbox'][2] * a['bbox'][3]) for k, a in enumerate(annotations)],
        categories=[dict(id=1, name='thing')])
    coco.createIndex()
    return coco


def test_perfect_predictions_score_one():
    gt = _coco([dict(bbox=[10, 10, 100, 100]), dict(bbox=[120, 20, 40, 60])])
    results = [dict(image_id=1, category_id=1, bbox=[10, 10, 100, 100], score=0.9),
               dict(image_id=1, category_id=1, bbox=[120, 20, 40, 60], score=0.8)]
    metrics = coco_metrics(gt, results)
    assert metrics['bbox_AP'] == pytest.approx(1.0) and metrics['bbox_AP50'] == pytest.approx(1.0)
    assert metrics['bbox_APm'] == pytest.approx(1.0) and metrics['bbox_APl'] == pytest.approx(1.0)
    assert metrics['bbox_APs'] == -1  # no small object in the ground truth
    assert set(metrics) == {f'bbox_{k}' for k in ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')}


def test_a_box_at_iou_0_6_counts_at_ap50_not_at_ap75():
    gt = _coco([dict(bbox=[0, 0, 100, 100])])
    shifted = [dict(image_id=1, category_id=1, bbox=[20, 0, 100, 100], score=0.9)]  # IoU 80/120 = 0.67
    metrics = coco_metrics(gt, shifted)
    assert metrics['bbox_AP50'] == pytest.approx(1.0) and metrics['bbox_AP75'] == pytest.approx(0.0)
    assert metrics['bbox_AP'] == pytest.approx(0.4)  # matched at 4 of the 10 thresholds (0.50, ..., 0.65)


def test_a_detection_on_a_crowd_is_not_a_false_positive():
    gt = _coco([dict(bbox=[0, 0, 50, 50]), dict(bbox=[100, 100, 80, 80], iscrowd=1)])
    hit = dict(image_id=1, category_id=1, bbox=[0, 0, 50, 50], score=0.5)
    on_crowd = dict(image_id=1, category_id=1, bbox=[110, 110, 40, 40], score=0.9)  # scored above the hit
    assert coco_metrics(gt, [hit, on_crowd])['bbox_AP'] == pytest.approx(1.0)
    elsewhere = dict(on_crowd, bbox=[60, 0, 30, 30])
    assert coco_metrics(gt, [hit, elsewhere])['bbox_AP'] < 0.9


def test_no_results_score_zero():
    assert coco_metrics(_coco([dict(bbox=[0, 0, 50, 50])]), [])['bbox_AP50'] == 0.0


class _Oracle(nn.Module):
    """Returns the targets of a data set, in order, as its detections (with masks when given)."""

    def __init__(self, dataset):
        super().__init__()
        self.targets = iter([t for _, t in dataset])

    def forward(self, images):
        outputs = []
        for _ in images:
            t = next(self.targets)
            out = dict(boxes=t['boxes'].as_subclass(torch.Tensor), labels=t['labels'],
                       scores=torch.linspace(0.9, 0.5, len(t['labels'])))
            if 'masks' in t:
                out['masks'] = t['masks'][:, None].float()
            outputs.append(out)
        return outputs


@pytest.mark.parametrize('masks', [True, False])
def test_evaluate_detector_scores_perfect_boxes_and_masks(coco_root, masks):
    ds = CocoDetectionDataset(coco_root, 'train2017', masks=masks)
    images_1_3_4 = torch.utils.data.Subset(ds, [0, 2, 3])  # image 2's zero-width box cannot be predicted
    metrics = evaluate_detector(_Oracle(images_1_3_4), build_loader(images_1_3_4, 2, train=False), ds.coco)
    assert metrics['bbox_AP'] == pytest.approx(1.0)
    if masks:
        assert metrics['segm_AP'] == pytest.approx(1.0)
    else:
        assert 'segm_AP' not in metrics
    missed = evaluate_detector(_Oracle(ds), build_loader(ds, 2, train=False), ds.coco)
    assert missed['bbox_AP'] < 1.0  # image 2 joins the evaluation: its zero-width box is never predicted


def test_to_coco_results_converts_boxes_and_masks():
    masks = torch.zeros(1, 1, 8, 8)
    masks[0, 0, 2:5, 1:4] = 0.9
    boxes, segms = to_coco_results(dict(boxes=torch.tensor([[1.0, 2.0, 4.0, 5.0]]), labels=torch.tensor([7]),
                                        scores=torch.tensor([0.5]), masks=masks), image_id=3)
    assert boxes == [dict(image_id=3, category_id=7, score=0.5, bbox=[1.0, 2.0, 3.0, 3.0])]
    from pycocotools import mask as mask_utils
    assert mask_utils.area(segms[0]['segmentation']) == 9 and isinstance(segms[0]['segmentation']['counts'], str)


# --- training loop --------------------------------------------------------------------------------------------------

class _ToyDetector(nn.Module):
    """The training interface of a torchvision detector: ``model(images, targets)`` -> loss dict."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3)

    def forward(self, images, targets):
        assert self.training and all(t['boxes'].device == images[0].device for t in targets)
        out = self.conv(torch.stack(images))
        return {'loss_a': out.float().square().mean(), 'loss_b': out.float().abs().mean()}


class _NoSchedule:
    def step_update(self, num_updates):
        pass


def _train_epoch(model, batches, optimizer=None, **step):
    """One epoch of the run layer's loop with detection's loss of a batch (the sum of the loss dict)."""
    task = DetectTask()
    task.device = torch.device('cpu')
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.1)
    return train_one_epoch(1, model, batches, task.loss, optimizer, _NoSchedule(),
                           StepConfig(device=torch.device('cpu'), progress=False, **step))


def test_train_one_epoch_returns_mean_losses():
    torch.manual_seed(0)
    batches = [([torch.randn(3, 8, 8) for _ in range(2)], [dict(boxes=torch.zeros(0, 4))] * 2) for _ in range(2)]
    model = _ToyDetector()
    before = model.conv.weight.detach().clone()
    bf16 = functools.partial(torch.autocast, device_type='cpu', dtype=torch.bfloat16)
    stats = _train_epoch(model, batches, clip_grad=1e-3, autocast=bf16)
    assert {'train_loss_a', 'train_loss_b', 'train_loss'} <= set(stats) and stats['num_updates'] == 2
    assert stats['train_loss'] == pytest.approx(stats['train_loss_a'] + stats['train_loss_b'])
    moved = (model.conv.weight - before).norm()
    assert 0 < moved <= 2 * 0.1 * 1e-3 + 1e-6  # two steps of lr 0.1 on gradients clipped to norm 1e-3
    with pytest.raises(ValueError, match='yielded no batch'):
        _train_epoch(model, [])


class _Diverging(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, images, targets):
        return {'loss_box': self.w * 0.5, 'loss_cls': self.w * float('nan')}


def test_a_non_finite_loss_stops_with_a_clear_error():
    batches = [([torch.zeros(3, 4, 4)], [dict(boxes=torch.zeros(0, 4))])]
    model = _Diverging()
    with pytest.raises(NonFiniteLossError, match=r'loss is nan at epoch 1, step 1 of 1 \(update 1; loss_box=0.5, '
                                                 r'loss_cls=nan\)'):
        _train_epoch(model, batches)
