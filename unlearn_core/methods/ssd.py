"""Selective Synaptic Dampening (Foster et al., AAAI 2024; a baseline of S2).

Diagonal Fisher importances ``[]_f`` on the forget-side data and ``[]_r`` on the retain data;
every trainable weight with ``[]_f > alpha * []_r`` is multiplied by
``beta = min(lambda * []_r / []_f, 1)``. No gradient steps.

Choices: SSD computes the reference importance on the full training set; we use the retain
training images (the forget set is a few percent of it). In the one-shot setting the forget
importance comes from the support sample (one image per identity).
Defaults alpha=10, lambda=1 are SSD's; the retain Fisher uses 256 random retain images by
default (CPU budget; ``retain_images=None`` for all).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import FaceModel
from .base import Budget, Progress, UnlearningMethod, UnlearnRequest, param, register_method
from .importance import forget_specific, parameter_importance


@register_method
@dataclass
class SSD(UnlearningMethod):
    name = "ssd"
    summary = "Dampen weights whose Fisher importance for the forget data dominates (Foster et al. 2024)"
    requires_head = True
    needs = frozenset({"forget", "support", "retain"})

    alpha: float = param(10.0, 0.0, 1e6, "select weights with forget importance > alpha x retain importance")
    dampening: float = param(1.0, 0.0, 1e6, "lambda: selected weights scale by min(lambda x retain/forget, 1)")
    batch_size: int = param(16, 1, 1024, "mini-batch size for the Fisher estimates")
    retain_images: int | None = param(256, 1, 10**7, "random retain images for the retain Fisher (None: all)", optional=True)

    def _unlearn(self, model: FaceModel, request: UnlearnRequest, budget: Budget, progress: Progress,
                 generator: torch.Generator) -> None:
        progress(0.0, "ssd: Fisher importance on the forget data")
        forget = parameter_importance(model, request.forget_data(), self.batch_size).fisher
        progress(0.3, "ssd: Fisher importance on the retain data")
        retain = parameter_importance(model, request.retain, self.batch_size, self.retain_images, generator).fisher
        selected = forget_specific(forget, retain, self.alpha)
        self.n_dampened_ = 0
        with torch.no_grad():
            for name, p in model.named_trainable_parameters():
                beta = (self.dampening * retain[name] / forget[name].clamp(min=1e-30)).clamp(max=1.0)
                p.copy_(torch.where(selected[name], p * beta, p))
                self.n_dampened_ += int(selected[name].sum())
        progress(1.0, f"ssd: dampened {self.n_dampened_} weights")
