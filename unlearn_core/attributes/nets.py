"""face-api's age/gender net (TinyXception) and facial-expression net (dense blocks) in PyTorch.

Ported from ``@vladmandic/face-api`` 1.7.15 (MIT; ``src/xception``, ``src/faceFeatureExtractor``,
``src/ageGenderNet``, ``src/faceExpressionNet``); weights converted by
``python tools/convert_dlib_faceapi.py --net age_gender|face_expression``. Both nets take a face
crop of any square size, resize it to 112x112 as tfjs' ``resizeBilinear`` (no half-pixel centres),
subtract face-api's mean RGB and divide by 255. Convolutions use TensorFlow's ``same`` padding
(asymmetric for stride 2). ``tests/test_attributes.py`` checks them against the tfjs originals.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..backbones.dlib_resnet import dequantise
from ..errors import WeightsUnavailable

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
AGE_GENDER_FILE = ("faceapi_age_gender.safetensors", "5cfd567946047a616a0f462878810f824586652d2cce1216467b6e78a9c3d752")
EXPRESSION_FILE = ("faceapi_face_expression.safetensors", "e3653d68bcae7defbb4e34d89b63a8308832e74a01fbccba1263c331b86615f9")
INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)
EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
GENDERS = ("male", "female")
"""face-api's gender softmax order: index 0 is the probability of 'male'."""


def tf_resize_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """tfjs ``resizeBilinear(x, [size, size], alignCorners=false, halfPixelCenters=false)`` on NCHW."""

    def axis(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(size, dtype=torch.float32) * (n_in / size)
        lo = src.floor().long().clamp(max=n_in - 1)
        return lo, (lo + 1).clamp(max=n_in - 1), src - lo

    y0, y1, fy = axis(x.shape[2])
    x0, x1, fx = axis(x.shape[3])
    top = x[:, :, y0][..., x0] * (1 - fx) + x[:, :, y0][..., x1] * fx
    bottom = x[:, :, y1][..., x0] * (1 - fx) + x[:, :, y1][..., x1] * fx
    return top + (bottom - top) * fy[:, None]


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow ``same`` padding: the odd pixel goes to the bottom/right."""
    pads = []
    for n in (x.shape[3], x.shape[2]):
        total = max(kernel - stride if n % stride == 0 else kernel - n % stride, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class Conv(nn.Module):
    """A plain conv with ``same`` padding (HWIO tfjs filters)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.conv, self.kernel, self.stride = nn.Conv2d(cin, cout, kernel, stride), kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(pad_same(x, self.kernel, self.stride))

    def load(self, t: dict[str, torch.Tensor], prefix: str) -> None:
        self.conv.weight.data = t[f"{prefix}/filters"].permute(3, 2, 0, 1).contiguous()
        self.conv.bias.data = t[f"{prefix}/bias"]


class SeparableConv(nn.Module):
    """tfjs ``separableConv2d`` (3x3 depthwise, 1x1 pointwise) plus bias, ``same`` padding."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(pad_same(x, 3, self.stride)))

    def load(self, t: dict[str, torch.Tensor], prefix: str) -> None:
        self.depthwise.weight.data = t[f"{prefix}/depthwise_filter"].permute(2, 3, 0, 1).contiguous()
        self.pointwise.weight.data = t[f"{prefix}/pointwise_filter"].permute(3, 2, 0, 1).contiguous()
        self.pointwise.bias.data = t[f"{prefix}/bias"]


class ReductionBlock(nn.Module):
    def __init__(self, cin: int, cout: int, activate_input: bool = True):
        super().__init__()
        self.sep0, self.sep1 = SeparableConv(cin, cout), SeparableConv(cout, cout)
        self.expansion = Conv(cin, cout, 1, 2)
        self.activate_input = activate_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.sep1(F.relu(self.sep0(F.relu(x) if self.activate_input else x)))
        out = F.max_pool2d(pad_same(out, 3, 2, float("-inf")), 3, 2)
        return out + self.expansion(x)

    def load(self, t: dict[str, torch.Tensor], prefix: str) -> None:
        self.sep0.load(t, f"{prefix}/separable_conv0")
        self.sep1.load(t, f"{prefix}/separable_conv1")
        self.expansion.load(t, f"{prefix}/expansion_conv")


class MainBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.seps = nn.ModuleList(SeparableConv(channels, channels) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for sep in self.seps:
            out = sep(F.relu(out))
        return out + x

    def load(self, t: dict[str, torch.Tensor], prefix: str) -> None:
        for i, sep in enumerate(self.seps):
            sep.load(t, f"{prefix}/separable_conv{i}")


class DenseBlock(nn.Module):
    """face-api's ``denseBlock4``: four convs, each fed the relu of the sum of the earlier outputs."""

    def __init__(self, cin: int, cout: int, first: bool):
        super().__init__()
        self.conv0 = Conv(cin, cout, 3, 2) if first else SeparableConv(cin, cout, 2)
        self.convs = nn.ModuleList(SeparableConv(cout, cout) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = F.relu(self.conv0(x))
        for conv in self.convs:
            total = total + conv(F.relu(total))  # the first relu is a no-op (total is already >= 0)
        return F.relu(total)

    def load(self, t: dict[str, torch.Tensor], prefix: str) -> None:
        self.conv0.load(t, f"{prefix}/conv0")
        for i, conv in enumerate(self.convs, 1):
            conv.load(t, f"{prefix}/conv{i}")


def preprocess(chips: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) RGB 0..255 square crops -> face-api's normalised (N, 3, 112, 112) input."""
    if chips.ndim != 4 or chips.shape[-1] != 3 or chips.shape[1] != chips.shape[2]:
        raise ValueError(f"expected square RGB crops of shape (N, S, S, 3), got {tuple(chips.shape)}")
    x = tf_resize_bilinear(chips.float().permute(0, 3, 1, 2), INPUT_SIZE)
    return (x - torch.tensor(MEAN_RGB)[:, None, None]) / 255.0


class AgeGenderNet(nn.Module):
    """TinyXception (2 main blocks) -> 7x7 average pool -> age regression and 2-way gender logits."""

    def __init__(self):
        super().__init__()
        self.conv_in = Conv(3, 32, 3, 2)
        self.entry = nn.ModuleList([ReductionBlock(32, 64, activate_input=False), ReductionBlock(64, 128)])
        self.middle = nn.ModuleList([MainBlock(128), MainBlock(128)])
        self.exit_reduction = ReductionBlock(128, 256)
        self.exit_sep = SeparableConv(256, 512)
        self.fc_age, self.fc_gender = nn.Linear(512, 1), nn.Linear(512, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv_in(x))
        for block in (*self.entry, *self.middle, self.exit_reduction):
            out = block(out)
        return F.avg_pool2d(F.relu(self.exit_sep(out)), 7, 2).flatten(1)

    def forward(self, chips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops -> (age in years (N,), gender logits (N, 2) in ``GENDERS`` order)."""
        pooled = self.features(preprocess(chips))
        return self.fc_age(pooled)[:, 0], self.fc_gender(pooled)

    def load(self, t: dict[str, torch.Tensor]) -> None:
        self.conv_in.load(t, "entry_flow/conv_in")
        for i, block in enumerate(self.entry):
            block.load(t, f"entry_flow/reduction_block_{i}")
        for i, block in enumerate(self.middle):
            block.load(t, f"middle_flow/main_block_{i}")
        self.exit_reduction.load(t, "exit_flow/reduction_block")
        self.exit_sep.load(t, "exit_flow/separable_conv")
        for fc, name in ((self.fc_age, "age"), (self.fc_gender, "gender")):
            fc.weight.data = t[f"fc/{name}/weights"].t().contiguous()
            fc.bias.data = t[f"fc/{name}/bias"]


class ExpressionNet(nn.Module):
    """Four dense blocks (32-64-128-256 channels) -> 7x7 average pool -> 7 expression logits."""

    def __init__(self):
        super().__init__()
        widths = (3, 32, 64, 128, 256)
        self.dense = nn.ModuleList(DenseBlock(widths[i], widths[i + 1], first=i == 0) for i in range(4))
        self.fc = nn.Linear(256, len(EXPRESSIONS))

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """Crops -> (N, 7) logits in ``EXPRESSIONS`` order."""
        out = preprocess(chips)
        for block in self.dense:
            out = block(out)
        return self.fc(F.avg_pool2d(out, 7, 2).flatten(1))

    def load(self, t: dict[str, torch.Tensor]) -> None:
        for i, block in enumerate(self.dense):
            block.load(t, f"dense{i}")
        self.fc.weight.data = t["fc/weights"].t().contiguous()
        self.fc.bias.data = t["fc/bias"]


def _load(net: nn.Module, file: tuple[str, str], flag: str) -> nn.Module:
    path = CHECKPOINTS / file[0]
    if not path.is_file():
        raise WeightsUnavailable(f"face-api weights not found at {path}. Regenerate them with "
                                 f"`python tools/convert_dlib_faceapi.py --net {flag}` (needs npm and the npm registry).")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != file[1]:
        raise WeightsUnavailable(f"{path} has sha256 {digest}, expected {file[1]}: the file is corrupt or altered.")
    net.load(dequantise(load_file(str(path))))
    return net.eval()


def load_age_gender() -> AgeGenderNet:
    """The ported age/gender net with face-api's weights (offline, sha256-checked)."""
    return _load(AgeGenderNet(), AGE_GENDER_FILE, "age_gender")


def load_expression() -> ExpressionNet:
    """The ported facial-expression net with face-api's weights (offline, sha256-checked)."""
    return _load(ExpressionNet(), EXPRESSION_FILE, "face_expression")
