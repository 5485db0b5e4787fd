"""JiT: zero-shot Lipschitz unlearning (Foster et al. 2024a; a data-free baseline of S2).

Only the forget-side images are used (the support sample in the one-shot setting); retain data
never reach this method (``needs`` has no 'retain'). Each step minimises the shared Lipschitz
ratio ``||e(x) - e(x + delta)|| / ||delta||`` over ``n_samples`` Gaussian perturbations of the
forget inputs (``lipschitz_loss`` from ``lipschitz.py``), smoothing the model around them.

Choices: JiT makes one pass over the forget set; here ``iterations=None`` (the default) means
``ceil(n / batch_size)`` PK-sampled batches of the ``n`` forget-side images (one pass in
expectation; 2 steps for a 10-person support sample), n = 25 noise draws per image. JiT sets lr and
sigma per dataset (lr 1e-4 .. 1e-3, sigma ~ 0.1 - 1); ``paper_grid`` spans those ranges and the
defaults are the point ``tuning.tune`` chose on a validation split (docs/tuning-lfw.md).
Unlike S0's ``lipschitz`` there is no retain term and no saliency mask by default.
"""
from __future__ import annotations

import math
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

    paper_grid = {"lr": (1e-3, 1e-4, 5e-4), "noise_std": (0.1, 0.5, 1.0)}

    iterations: int | None = param(None, 1, 100_000, "optimisation steps (None: one pass over the forget-side images)", optional=True)
    lr: float = param(1e-3, 1e-8, 1.0, "SGD learning rate")
    batch_size: int = param(8, 2, 1024, "forget images per step")
    n_samples: int = param(25, 1, 256, "noise draws per forget image")
    noise_std: float = param(0.1, 1e-4, 10.0, "noise std, in units of the input batch's standard deviation")

    def n_steps(self, request: UnlearnRequest) -> int:
        return self.iterations or math.ceil(len(request.forget_data()) / self.batch_size)

    def setup(self, model: FaceModel, request: UnlearnRequest, generator: torch.Generator) -> None:
        self._generator = generator

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        return lipschitz_loss(model, batch.x, self.n_samples, self.noise_std, self._generator)
