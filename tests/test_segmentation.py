"""Segmentation: DeepLabV3/FCN on plain and BA dilated backbones, COCO semantic masks, mIoU."""
import pytest
import torch

pytest.importorskip('pycocotools')

import timm  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from _coco_data import SIZE, write_coco  # noqa: E402
from banet.segmentation import (CocoSegmentationDataset, SegmentationMetric, create_segmenter,  # noqa: E402
                                evaluate_segmenter, metrics_from_confusion)


@pytest.mark.parametrize('backbone', ['resnet18', 'ba_resnet18'])
@pytest.mark.parametrize('arch', ['deeplabv3', 'fcn'])
def test_segmenter_trains_one_step_and_predicts(arch, backbone):
    model = create_segmenter(arch, backbone, num_classes=3, aux=True, output_stride=16)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    y[0, :4] = 255
    model.train()
    out = model(x)
    assert set(out) == {'out', 'aux'} and out['out'].shape == out['aux'].shape == (2, 3, 32, 32)
    loss = F.cross_entropy(out['out'], y, ignore_index=255) + 0.5 * F.cross_entropy(out['aux'], y, ignore_index=255)
    loss.backward()
    assert torch.isfinite(loss) and model.backbone.features.body.conv1.weight.grad is not None
    model.eval()
    with torch.no_grad():
        assert set(model(x[:1])) == {'out', 'aux'}


@pytest.mark.parametrize('output_stride', [8, 16])
def test_output_stride_dilates_the_backbone(output_stride):
    model = create_segmenter('fcn', 'ba_resnet18', num_classes=2, output_stride=output_stride).eval()
    with torch.no_grad():
        features = model.backbone(torch.randn(1, 3, 32, 32))
    assert set(features) == {'out'} and features['out'].shape == (1, 512, 32 // output_stride, 32 // output_stride)
    rates = create_segmenter('deeplabv3', 'resnet18', output_stride=output_stride).classifier[0].convs[1][0].dilation
    assert rates == ((12, 12) if output_stride == 8 else (6, 6))


def test_bad_arguments_are_clear_value_errors():
    with pytest.raises(ValueError, match="unknown segmenter 'unet'"):
        create_segmenter('unet', 'resnet18')
    with pytest.raises(ValueError, match='output_stride must be one of'):
        create_segmenter('fcn', 'resnet18', output_stride=32)


def test_frozen_norms_and_weights():
    state = timm.create_model('ba_resnet18').state_dict()
    model = create_segmenter('fcn', 'ba_resnet18', num_classes=2, norm='frozen', backbone_weights=state)
    body = model.backbone.features.body
    assert not [m for m in body.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert model.backbone.features.weights_report == ([], [], ())
    assert torch.equal(body.state_dict()['layer3.0.conv1.weight'], state['layer3.0.conv1.weight'])


def test_miou_and_pixel_accuracy_of_a_known_confusion():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])
    prediction = torch.tensor([[[0, 1, 1, 1], [2, 0, 2, 0]]])
    metric = SegmentationMetric(3)
    metric.update(prediction, target)
    assert metric.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    result = metric.compute()
    # IoU: class 0 1/(2+2-1), class 1 2/(2+3-2), class 2 1/(2+1-1)
    assert result['iou'] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert result['miou'] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert result['pixel_acc'] == pytest.approx(4 / 6)  # the two ignored pixels do not count
    logits = F.one_hot(prediction, 3).permute(0, 3, 1, 2).float()
    metric.update(logits, target)  # logits are argmax-ed
    assert metric.confusion.tolist() == [[2, 2, 0], [0, 4, 0], [2, 0, 2]]
    metric.reset()
    assert metric.confusion.sum() == 0


def test_an_absent_class_is_left_out_of_the_mean_and_bad_labels_are_refused():
    result = metrics_from_confusion(torch.tensor([[3, 1, 0], [0, 4, 0], [0, 0, 0]]))
    assert result['miou'] == pytest.approx((3 / 4 + 4 / 5) / 2)
    with pytest.raises(ValueError, match=r'target labels must be in \[0, 3\) or 255'):
        SegmentationMetric(3).update(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 7))


def test_semantic_mask_dataset_and_evaluation(tmp_path):
    root = write_coco(tmp_path)
    ds = CocoSegmentationDataset(root, 'train2017')
    image, mask = ds[1]  # a red object, a crowd, a zero-width box
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32 and image.min() < 0  # normalised
    assert mask.dtype == torch.int64 and set(mask.unique().tolist()) == {0, 1, 255}
    assert (mask[6:28, 30:54] == 1).all() and (mask[36:56, 4:24] == 255).all()

    class Oracle(nn.Module):  # predicts the ground truth of each batch
        def __init__(self):
            super().__init__()
            self.masks = iter([m for _, m in ds])

        def forward(self, images):
            labels = torch.stack([next(self.masks) for _ in images]).clamp(max=2)
            return {'out': F.one_hot(labels, 3).permute(0, 3, 1, 2).float()}

    loader = torch.utils.data.DataLoader(ds, batch_size=2)
    result = evaluate_segmenter(Oracle(), loader, num_classes=3)
    assert result['miou'] == pytest.approx(1.0) and result['pixel_acc'] == pytest.approx(1.0)
