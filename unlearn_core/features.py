"""Model inputs as tensors: preprocessed chips, or cached activations of the frozen trunk.

``FaceData`` is what methods consume: inputs at the model's level, their horizontally flipped
twins (for the flip augmentation on cached activations), the head's class labels, and the uint8
chips (for other augmentations and for display).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .backbones import Backbone


@dataclass
class FaceData:
    inputs: torch.Tensor
    inputs_flipped: torch.Tensor
    labels: torch.Tensor
    chips: np.ndarray
    image_ids: np.ndarray
    """Gallery image indices (or -1 for images that are not in the gallery, e.g. an upload)."""

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray | torch.Tensor | list[int]) -> FaceData:
        idx = np.asarray(idx, dtype=np.int64)
        t = torch.from_numpy(idx)
        return FaceData(self.inputs[t], self.inputs_flipped[t], self.labels[t], self.chips[idx], self.image_ids[idx])

    def batch(self, idx: torch.Tensor, flip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and labels of ``idx``; where ``flip`` is true the flipped twin is used."""
        x = self.inputs[idx]
        if flip is not None:
            x = torch.where(flip.view(-1, *[1] * (x.dim() - 1)).to(x.device), self.inputs_flipped[idx], x)
        return x, self.labels[idx]

    @torch.no_grad()
    def map_inputs(self, fn: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 256) -> FaceData:
        """The same images with ``fn`` applied to their inputs and flipped inputs, in batches."""
        def run(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
        return FaceData(run(self.inputs), run(self.inputs_flipped), self.labels, self.chips, self.image_ids)

    def to(self, device: torch.device | str) -> FaceData:
        return FaceData(self.inputs.to(device), self.inputs_flipped.to(device), self.labels.to(device), self.chips, self.image_ids)


PARTS = ("forget_train", "forget_test", "retain_train", "retain_test", "distractors")
GALLERY_PARTS = ("forget_test", "retain_test", "distractors")
"""The retrieval gallery: photos a service searches, unlabelled to it (the training photos are labelled)."""


@dataclass(frozen=True)
class Parts:
    """A protocol's five image sets (``PARTS``), read by attribute (``parts.forget_train``); the
    loops over names of ``PARTS`` / ``GALLERY_PARTS`` use ``parts[name]``."""

    forget_train: FaceData
    forget_test: FaceData
    retain_train: FaceData
    retain_test: FaceData
    distractors: FaceData

    def __getitem__(self, name: str) -> FaceData:
        if name not in PARTS:
            raise KeyError(f"no part {name!r}; parts are {PARTS}")
        return getattr(self, name)

    def items(self) -> list[tuple[str, FaceData]]:
        return [(name, getattr(self, name)) for name in PARTS]

    def gallery(self) -> list[FaceData]:
        """The retrieval gallery's parts (``GALLERY_PARTS``), in order."""
        return [getattr(self, name) for name in GALLERY_PARTS]

    def map(self, fn: Callable[[FaceData], FaceData]) -> Parts:
        return Parts(**{name: fn(data) for name, data in self.items()})


class InputEncoder:
    """Maps uint8 chips to a model's inputs at stage ``start`` (frozen trunk, no grad)."""

    def __init__(self, backbone: Backbone, start: int, device: torch.device | str = "cpu", batch_size: int = 128):
        self.backbone, self.start, self.device, self.batch_size = backbone, start, torch.device(device), batch_size

    @torch.no_grad()
    def __call__(self, chips: np.ndarray | torch.Tensor, desc: str | None = None) -> torch.Tensor:
        chips = torch.as_tensor(chips)
        out = []
        steps = range(0, len(chips), self.batch_size)
        for i in tqdm(steps, desc=desc, disable=desc is None or len(steps) < 4, leave=False):
            x = self.backbone.preprocess(chips[i : i + self.batch_size].to(self.device))
            out.append(self.backbone.module.forward_until(x, self.start))
        if not out:
            return torch.zeros(0)
        return torch.cat(out)

    def face_data(self, chips: np.ndarray, labels: np.ndarray, image_ids: np.ndarray, desc: str | None = None) -> FaceData:
        chips = np.ascontiguousarray(chips)
        return FaceData(
            inputs=self(chips, desc),
            inputs_flipped=self(np.ascontiguousarray(chips[:, :, ::-1]), desc and desc + " (flipped)"),
            labels=torch.as_tensor(labels, dtype=torch.long, device=self.device),
            chips=chips,
            image_ids=np.asarray(image_ids, dtype=np.int64),
        )


def augment_chips(chips: np.ndarray, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """SimCLR-style views of aligned chips, kept face-plausible: random resized crop (scale
    0.7-1, aspect 0.9-1.1), small rotation (+-10 deg), flip, brightness/contrast/saturation jitter
    (+-0.3), optional grayscale (p=0.2). Returns float chips (N, S, S, 3) in 0..255.
    """
    x = torch.as_tensor(chips).float().permute(0, 3, 1, 2) / 255.0
    n = len(x)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    scale = uniform(1 - 0.3 * strength, 1.0).sqrt() * uniform(0.95, 1.05)
    angle = uniform(-10 * strength, 10 * strength) * np.pi / 180
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (1 - scale[:, None]).clamp(min=0)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    gray = x.mean(1, keepdim=True)
    x = gray + (x - gray) * uniform(1 - 0.3 * strength, 1 + 0.3 * strength)[:, None, None, None]
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * uniform(1 - 0.3 * strength, 1 + 0.3 * strength)[:, None, None, None]
    x = x * uniform(1 - 0.3 * strength, 1 + 0.3 * strength)[:, None, None, None]
    to_gray = (torch.rand(n, generator=generator) < 0.2)[:, None, None, None]
    x = torch.where(to_gray, x.mean(1, keepdim=True).expand_as(x), x)
    return (x.clamp(0, 1) * 255).permute(0, 2, 3, 1)
