"""Independent re-statement of the official BA-Net ResNets, used only as the parity reference in tests.

It reproduces the *state-dict layouts* and the maths of the authors' three implementations (torchvision-style ResNet,
7x7 stem, blocks holding a ``ba`` module) so that weights generated here are official-format checkpoints.
"""
from typing import List

import torch
from torch import nn

LAYOUTS = ('bav1', 'bav2_v1', 'bav2_v2_1')


class OfficialBridge(nn.Module):
    """The ``ba`` module of one block, in the named layout."""

    def __init__(self, layout: str, widths: List[int], out: int, reduction: int = 16) -> None:
        super().__init__()
        self.layout = layout
        d = out // reduction
        lin_bn = lambda c: nn.Sequential(nn.Linear(c, d, bias=False), nn.BatchNorm1d(d))  # noqa: E731
        if layout == 'bav1':
            self.pre_fusions = nn.ModuleList([lin_bn(c) for c in widths[:-1]])
            self.cur_fusion = lin_bn(widths[-1])
            self.generation = nn.Sequential(nn.ReLU(), nn.Linear(d, out, bias=False), nn.Sigmoid())
        elif layout == 'bav2_v1':
            self.fusions = nn.ModuleList([lin_bn(c) for c in widths])
            self.generation = nn.Sequential(nn.ReLU(), nn.Linear(d, out, bias=False), nn.Sigmoid())
        else:
            self.fusions = nn.ModuleList([nn.Sequential(nn.Linear(c, d, bias=False)) for c in widths])
            self.proj = nn.Linear(len(widths), 1)
            self.generation = nn.Sequential(
                nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, out, bias=False), nn.Sigmoid())

    def forward(self, pooled: List[torch.Tensor]) -> torch.Tensor:
        flat = [p.flatten(1) for p in pooled]
        if self.layout == 'bav1':
            z = self.cur_fusion(flat[-1]) + sum(f(p) for f, p in zip(self.pre_fusions, flat[:-1]))
        elif self.layout == 'bav2_v1':
            z = sum(f(p) for f, p in zip(self.fusions, flat))
        else:
            z = self.proj(torch.stack([f(p) for f, p in zip(self.fusions, flat)], dim=2)).squeeze(-1)
        return self.generation(z)[:, :, None, None]


class OfficialBlock(nn.Module):
    def __init__(self, layout: str, inplanes: int, planes: int, stride: int, bottleneck: bool) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        out = planes * (4 if bottleneck else 1)
        if bottleneck:
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
            widths = [planes, planes, out]
        else:
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            widths = [planes, planes]
        self.bn1 = nn.BatchNorm2d(planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.ba = OfficialBridge(layout, widths, out)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gap = lambda t: nn.functional.adaptive_avg_pool2d(t, 1)  # noqa: E731
        out = torch.relu(self.bn1(self.conv1(x)))
        pooled = [gap(out)]
        out = self.bn2(self.conv2(out))
        if self.bottleneck:
            out = torch.relu(out)
            pooled.append(gap(out))
            out = self.bn3(self.conv3(out))
        pooled.append(gap(out))
        out = out * self.ba(pooled)
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + identity)


class OfficialResNet(nn.Module):
    def __init__(self, layout: str, layers: List[int], bottleneck: bool, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                blocks.append(OfficialBlock(layout, inplanes, planes, 2 if i and not j else 1, bottleneck))
                inplanes = planes * (4 if bottleneck else 1)
            setattr(self, f'layer{i + 1}', nn.Sequential(*blocks))
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


def randomize_(model: nn.Module, image_size: int = 64, seed: int = 0) -> nn.Module:
    """Make a checkpoint-like model: random affine/linear weights, BN statistics calibrated on random images."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:  # norm affine, biases, the selection weights' bias
                p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if name.endswith('weight') else 0.0))
            elif p.ndim == 2:  # linear layers (projections, selection, expansion, classifier)
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass sets the batch statistics
        model.train()(torch.randn(8, 3, image_size, image_size, generator=g))
        for m in norms:
            m.momentum = 0.1
    return model.eval()
