"""Gradient Ascent (S0 Eq. 8): maximise the CosFace loss of the forget images.

``L_GA = -L_CosFace(f(I_i), y_i)`` over forget-set batches, with S0's lower learning rate 1e-5
(§5.5) and 50 steps (S0 Table 5: the 1e-5/50-step run reached 0 % forget centroid accuracy).
The loss is unbounded, so longer runs or larger rates eventually break the model (S0 App. A).
On the batch-norm-free dlib network even the paper's settings do: on the small LFW protocol 10
steps drive the head's accuracy to ~0 on forget *and* retained test images and push every
embedding towards a common direction (compactness 0.72 -> 0.97), while retrieval mAP and centroid
accuracy barely move. The shared ``clip_norm`` (off by default, as in the paper) tames it.
`make bench` at the defaults (LFW, 10 forget / 40 retained identities, 3 seeds): forget head 100 -> 0 %,
retained 99.6 -> 4 %, compactness 0.995, forget mAP 99.4 -> 92.3 %.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import FaceModel
from .base import Batch, IterativeMethod, cosface_loss, param, register_method


@register_method
@dataclass
class GradientAscent(IterativeMethod):
    name = "gradient_ascent"
    summary = "Climb the CosFace loss of the forget images (S0 Eq. 8)"
    requires_head = True

    iterations: int = param(50, 1, 100_000, "optimisation steps")
    lr: float = param(1e-5, 1e-8, 1.0, "SGD learning rate")

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        return -cosface_loss(model, batch.x, batch.y)
