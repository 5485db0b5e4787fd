"""JiT: zero-shot Lipschitz unlearning (Foster et al. 2024a; a data-free baseline of S2).

Only the forget-side images are used (the support sample in the one-shot setting); retain data
never reach this method (``needs`` has no 'retain'). Each step minimises the shared Lipschitz
ratio ``||e(x) - e(x + delta)|| / ||delta||`` over ``n_samples`` Gaussian perturbations of the
forget inputs (``lipschitz_loss`` from ``lipschitz.py``), smoothing the model around them.

Choices: JiT makes one pass over the forget set; here ``iterations`` PK-sampled forget batches
(default 8 steps of 8 images) with SGD lr 1e-3 (JiT's per-sample
lr 1e-4 .. 1e-3 range), n = 25 and noise std 0.1 of the input batch's std (JiT's sigma ~ 0.1 - 1).
Unlike S0's ``lipschitz`` there is no retain term and no saliency mask by default.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import FaceModel
from .base import Batch, IterativeMethod, UnlearnRequest, param, register_method
from .lipschitz import lipschitz_loss


@register_method
@dataclass
class JiT(IterativeMethod):
    name = "jit"
    summary = "Zero-shot Lipschitz smoothing around the forget images, no retain data (JiT)"
    needs = frozenset({"forget", "support"})

    iterations: int = param(8, 1, 100_000, "optimisation steps")
    lr: float = param(1e-3, 1e-8, 1.0, "SGD learning rate")
    batch_size: int = param(8, 2, 1024, "forget images per step")
    n_samples: int = param(25, 1, 256, "noise draws per forget image")
    noise_std: float = param(0.1, 1e-4, 10.0, "noise std, in units of the input batch's standard deviation")

    def setup(self, model: FaceModel, request: UnlearnRequest, generator: torch.Generator) -> None:
        self._generator = generator

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        return lipschitz_loss(model, batch.x, self.n_samples, self.noise_std, self._generator)
