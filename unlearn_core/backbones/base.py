"""Backbone interface and registry (timm-style: names are the public API)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import InvalidParameter


class StagedEmbedder(nn.Module):
    """A face embedder written as an ordered list of stages.

    ``forward_from(x, start)`` runs stages ``start..end``: the CPU fast path caches the
    activations entering stage ``start`` once and trains only the later stages.
    Stage 0 takes preprocessed chips (``preprocess`` output).
    """

    stages: nn.ModuleList

    def forward_from(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        for stage in self.stages[start:]:
            x = stage(x)
        return x

    def forward_until(self, x: torch.Tensor, stop: int) -> torch.Tensor:
        """Activations entering stage ``stop`` (the input of ``forward_from(., stop)``)."""
        for stage in self.stages[:stop]:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(x, 0)


ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
                            np.float32)
"""The 5-point layout of 112x112 ArcFace/InsightFace training crops (left eye, right eye, nose, mouth corners)."""


@dataclass(frozen=True)
class InputSpec:
    """How aligned face chips are fed to an embedder.

    Chips are ``size`` x ``size`` RGB, aligned so that the 5 landmarks (left eye, right eye, nose
    tip, left and right mouth corner) land on ``template`` (chip pixels). The network input is
    ``(pixel - mean) / std`` per channel in ``colour`` order (values 0..255), laid out ``nchw`` or
    ``nhwc``, float32.
    """

    size: int
    template: np.ndarray
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    colour: str = "rgb"
    layout: str = "nchw"

    def preprocess(self, chips: torch.Tensor) -> torch.Tensor:
        """uint8/float RGB chips ``(N, size, size, 3)`` in 0..255 -> the network input."""
        x = chips.float()
        if self.colour == "bgr":
            x = x.flip(-1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device)
        x = (x - mean) / std
        return x.permute(0, 3, 1, 2).contiguous() if self.layout == "nchw" else x.contiguous()


@dataclass(frozen=True)
class Backbone:
    """A pretrained embedder (stage 0 takes ``inputs.preprocess`` output) and what it needs to be fed."""

    name: str
    module: StagedEmbedder
    inputs: InputSpec
    embed_dim: int
    tail_start: int
    """Stage index where the CPU fast path starts training (earlier stages are frozen and cached)."""
    stage_names: tuple[str, ...]

    @property
    def chip_size(self) -> int:
        return self.inputs.size

    @property
    def template(self) -> np.ndarray:
        return self.inputs.template

    def preprocess(self, chips: torch.Tensor) -> torch.Tensor:
        return self.inputs.preprocess(chips)

    def stage_index(self, name_or_index: str | int) -> int:
        """Resolve ``"tail"``, ``"full"``, a stage name or an index to a stage index."""
        if name_or_index == "tail":
            return self.tail_start
        if name_or_index == "full":
            return 0
        if isinstance(name_or_index, int) and 0 <= name_or_index < len(self.stage_names):
            return name_or_index
        if name_or_index in self.stage_names:
            return self.stage_names.index(name_or_index)
        raise InvalidParameter(
            f"unknown train_from {name_or_index!r} for backbone {self.name!r}; "
            f"use 'tail', 'full' or one of {list(self.stage_names)}"
        )


_REGISTRY: dict[str, Callable[..., Backbone]] = {}


def register_backbone(name: str) -> Callable[[Callable[..., Backbone]], Callable[..., Backbone]]:
    def decorator(factory: Callable[..., Backbone]) -> Callable[..., Backbone]:
        _REGISTRY[name] = factory
        return factory

    return decorator


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def create_backbone(name: str = "dlib_resnet") -> Backbone:
    """Build a backbone by name with its pretrained weights (``eval`` mode, on CPU)."""
    if name not in _REGISTRY:
        raise InvalidParameter(f"unknown backbone {name!r}; available: {list_backbones()}")
    return _REGISTRY[name]()
