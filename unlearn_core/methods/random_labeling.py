"""Random Labeling (S0 Eq. 7) and SalUn (random labeling restricted to salient weights).

``L_RL = L_CosFace(f(I_i), y_rand) + lambda_retain * L_CosFace(f(I_j), y_j)`` with ``y_rand``
drawn uniformly from all head classes (the true class included, as Eq. 7 states), forget images
``I_i`` and retained images ``(I_j, y_j)``. S0 §5.5: lambda_retain 1.0, lr 1e-4; 250 steps
(S0 Table 5). With ``lambda_retain = 0`` the method never reads retain data.
Measured on the small LFW protocol (tail path, batch 16, 10 steps): forget head accuracy 1.0 ->
0.17, retained 1.0 -> 0.68, retrieval mAP unchanged (forget 1.0, retained 0.995): classification-
sense forgetting only, as S0 Table 2 reports for RL.

``salun`` is SalUn's own recipe (Fan et al. 2024): the same random-labeling loss, updating only the
50 % of weights with the largest forget-loss gradient (the shared ``saliency`` parameter).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import FaceModel
from .base import Batch, IterativeMethod, UnlearnRequest, cosface_loss, param, register_method


@register_method
@dataclass
class RandomLabeling(IterativeMethod):
    name = "random_labeling"
    summary = "Fine-tune forget images towards uniformly random identities, retain images on their own (S0 Eq. 7)"
    requires_head = True

    iterations: int = param(250, 1, 100_000, "optimisation steps")
    lambda_retain: float = param(1.0, 0.0, 100.0, "weight of the CosFace loss on retained images")

    def data_needs(self) -> frozenset[str]:
        return self.needs | ({"retain"} if self.lambda_retain > 0 else set())

    def setup(self, model: FaceModel, request: UnlearnRequest, generator: torch.Generator) -> None:
        self._n_classes = model.head.n_classes

    def sample(self, request: UnlearnRequest, generator: torch.Generator) -> Batch:
        batch = super().sample(request, generator)
        batch.y = torch.randint(self._n_classes, batch.y.shape, generator=generator).to(batch.y.device)
        return batch

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        loss = cosface_loss(model, batch.x, batch.y)
        if self.lambda_retain > 0:
            loss = loss + self.lambda_retain * cosface_loss(model, batch.retain_x, batch.retain_y)
        return loss


@register_method
@dataclass
class SalUn(RandomLabeling):
    name = "salun"
    summary = "Random labeling on the 50 % most forget-salient weights only (SalUn)"

    saliency: float | None = param(0.5, 0.01, 1.0, "fraction of weights updated (largest forget-loss gradients)", optional=True)
