"""Fine-tune (catastrophic forgetting, Golatkar et al. 2020; S4's "Finetune" baseline).

Continue the original CosFace recipe (lr 1e-4, momentum 0.9, weight decay 5e-4, gradient-norm
clipping at 5, PK batches with flips) on the retained identities only, from the original model.
The clipping matters on this batch-norm-free network: without it, 10 steps raised the retained
identities' compactness from 0.72 to 0.97 (all embeddings drift together) on the small LFW protocol. The forget images are never
read: forgetting can only come from drift, so the forget identities' head rows and clusters are
left to decay on their own. Measured at the defaults (100 steps), `make bench` (LFW, 10 forget / 40
retained identities, 3 seeds): forget head accuracy stays 100 %, forget mAP 99.4 -> 99.0 %: no
forgetting at this budget (S4 §5 calls Finetune "ineffective unlearning" in representation space).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import FaceModel
from ..sampling import flip_mask, pk_batch
from .base import Batch, IterativeMethod, UnlearnRequest, cosface_loss, param, register_method


@register_method
@dataclass
class Finetune(IterativeMethod):
    name = "finetune"
    summary = "Keep training the original model on retained identities only"
    requires_head = True
    needs = frozenset({"retain"})

    iterations: int = param(100, 1, 100_000, "optimisation steps")
    momentum: float = param(0.9, 0.0, 0.999, "SGD momentum")
    weight_decay: float = param(5e-4, 0.0, 1.0, "SGD weight decay")
    clip_norm: float | None = param(5.0, 1e-6, 1e6, "clip the gradient norm to this (None = no clipping)", optional=True)

    def sample(self, request: UnlearnRequest, generator: torch.Generator) -> Batch:
        retain = request.retain
        idx = pk_batch(retain.labels, self.batch_size, generator).to(retain.labels.device)
        x, y = retain.batch(idx, flip_mask(len(idx), generator))
        return Batch(x[:0], y[:0], retain_x=x, retain_y=y)

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        return cosface_loss(model, batch.retain_x, batch.retain_y)
