"""IResNet ("improved" ResNet, Duta et al. 2020) as trained by ArcFace/InsightFace: the face
embedder S0 uses (ResNet-50 variant, 112x112 chips, 512-D). Written here from the architecture's
description so that state dicts saved by InsightFace's ``iresnet50`` load with the same parameter
names: pre-activation blocks ``BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN`` plus a
shortcut (1x1 conv + BN where the shape changes), four stages of stride 2, then
``BN -> flatten -> Linear(512*7*7, 512) -> BatchNorm1d``.
"""
from __future__ import annotations

import torch
from torch import nn


class IBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    def __init__(self, blocks: tuple[int, int, int, int], embed_dim: int = 512, input_size: int = 112):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        widths = (64, 128, 256, 512)
        cin = 64
        for i, (n, width) in enumerate(zip(blocks, widths), start=1):
            setattr(self, f"layer{i}", nn.Sequential(*[IBasicBlock(cin if k == 0 else width, width, 2 if k == 0 else 1) for k in range(n)]))
            cin = width
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        side = input_size // 16
        self.fc = nn.Linear(512 * side * side, embed_dim)
        self.features = nn.BatchNorm1d(embed_dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(torch.flatten(self.bn2(x), 1)))


def iresnet50() -> IResNet:
    """IResNet-50: 3, 4, 14 and 3 blocks (about 43.6 M parameters, a 174 MB float32 checkpoint)."""
    return IResNet((3, 4, 14, 3))
