"""Boundary Expanding (Chen et al. 2023), S4's other class-unlearning baseline, on a CosFace head.

Add one "shadow" class to the head (a random unit vector, drawn from the seed), fine-tune on the
forget images all labelled as that shadow class with the CosFace loss, then prune the shadow row:
the forget images end up in a region the remaining head no longer claims. No retain data.
Defaults: lr 1e-5 as in Chen et al.; 100 steps (their 10 epochs of one VGGFace2 identity at
batch 64 is about 60 steps; S0 App. A uses 100-500 for the sibling Boundary Shrink).
The shadow class starts far from every forget image, so the CosFace loss (s = 64) and its
gradients are large: on the small LFW protocol 10 steps at lr 3e-5 already drive the forget head
accuracy to 0 but also the retained one to ~0.05, with every embedding pulled to the shadow
direction (compactness ~1.0) while retrieval mAP holds (0.97). At the defaults (lr 1e-5, 100 steps):
forget head accuracy 1.00 -> 0.83 and retained 1.00 -> 0.78 there; `make bench` (LFW, 10 forget / 40
retained identities, 3 seeds): forget head 100 -> 42 %, retained 100 -> 50 %, compactness 0.98 for
both, retrieval unchanged (forget mAP 99.4 -> 98.6 %). It forgets in the classification sense only by
breaking the head for everyone: the shadow row attracts the retained identities' embeddings too.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..model import FaceModel
from .base import Batch, Budget, IterativeMethod, Progress, UnlearnRequest, cosface_loss, param, register_method


@register_method
@dataclass
class BoundaryExpanding(IterativeMethod):
    name = "boundary_expanding"
    summary = "Train forget images into a temporary shadow identity, then delete it (Chen et al. 2023)"
    requires_head = True

    iterations: int = param(100, 1, 100_000, "optimisation steps")
    lr: float = param(1e-5, 1e-8, 1.0, "SGD learning rate")

    def setup(self, model: FaceModel, request: UnlearnRequest, generator: torch.Generator) -> None:
        weight = model.head.weight.detach()
        shadow = F.normalize(torch.randn(1, weight.shape[1], generator=generator), dim=1).to(weight)
        model.head.weight = nn.Parameter(torch.cat([weight, shadow * weight.norm(dim=1).mean()]))
        self._shadow = weight.shape[0]

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        return cosface_loss(model, batch.x, torch.full_like(batch.y, self._shadow))

    def _unlearn(self, model: FaceModel, request: UnlearnRequest, budget: Budget, progress: Progress,
                 generator: torch.Generator) -> None:
        super()._unlearn(model, request, budget, progress, generator)
        model.head.weight = nn.Parameter(model.head.weight.detach()[: self._shadow].clone())
