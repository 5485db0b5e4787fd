"""Bad Teacher (Chundawat et al. 2023; a full-data reference in S2): competent/incompetent teachers.

The student (the original model) is distilled towards the frozen original ("competent teacher")
on retain images and towards an "incompetent teacher" on forget images, with KL(teacher || student)
at temperature ``temperature`` (1 in the paper).

The incompetent teacher is, as in the paper, a randomly initialised network: the trainable tail
re-initialised with PyTorch's default initialisers (every layer with ``reset_parameters``; the
frozen trunk below cannot differ between two networks in this project) and a random identity head
(class directions ~ N(0, I), same CosFace scale). The forget and retain losses are summed with
weights ``forget_weight`` and 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import FaceModel
from .base import Batch, IterativeMethod, UnlearnRequest, param, register_method
from .distill import kl_to_teacher


@register_method
@dataclass
class BadTeacher(IterativeMethod):
    name = "bad_teacher"
    summary = "Distil retain images from the original, forget images from a randomly initialised teacher"
    requires_head = True
    needs = frozenset({"forget", "support", "retain"})

    iterations: int = param(40, 1, 100_000, "optimisation steps")
    lr: float = param(1e-4, 1e-8, 1.0, "SGD learning rate")
    temperature: float = param(1.0, 0.1, 100.0, "distillation temperature")
    forget_weight: float = param(1.0, 0.0, 100.0, "weight of the forget (incompetent-teacher) KL")

    def setup(self, model: FaceModel, request: UnlearnRequest, generator: torch.Generator) -> None:
        self._competent = model.frozen_copy()
        self._incompetent = model.frozen_copy()
        layers = [m for block in self._incompetent.trainable_blocks() for m in block.modules() if hasattr(m, "reset_parameters")]
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # the default initialisers draw from the global RNG
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
            for layer in layers:
                layer.reset_parameters()
        head = self._incompetent.head
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator).to(head.weight.device))

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            bad = self._incompetent.logits(batch.x)
            good = self._competent.logits(batch.retain_x)
        return (self.forget_weight * kl_to_teacher(model.logits(batch.x), bad, self.temperature)
                + kl_to_teacher(model.logits(batch.retain_x), good, self.temperature))
