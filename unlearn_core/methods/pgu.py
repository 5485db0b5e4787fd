"""PGU: projected gradient unlearning (Hoang et al. 2024; a data-free baseline of S2).

S2 describes PGU as "gradient ascent updates [on the forget data] enforcing orthogonality to
important directions for the training data", and runs it with the support sample only. Our
reading, without any retain images: the important directions of the training data are the
retained identities' class directions, i.e. the rows of the CosFace head for classes outside
``forget_classes`` (the head is initialised from, and trained towards, their mean embeddings).
Their top principal directions (smallest set whose squared singular values reach ``energy`` of
the total, as in GPM's threshold) span the protected subspace ``U``.

Each step ascends the CosFace loss of the forget images with two projections:
* the gradient reaching the forget embeddings is projected onto the orthogonal complement of
  ``U`` (``g <- g - U U^T g``), so the embeddings move away only along directions retained
  identities do not use;
* the head does not move: forget rows moved by ascent took retained images with them (retain
  head accuracy fell to 3% in 10 steps here), so only the embedder is updated.
Defaults: 10 steps, lr 1e-5 (S0's gradient-ascent lr); ``energy`` 0.9.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..errors import InvalidParameter
from ..model import FaceModel
from .base import Batch, IterativeMethod, UnlearnRequest, param, register_method


def protected_subspace(directions: torch.Tensor, energy: float) -> torch.Tensor:
    """Orthonormal columns spanning the top principal directions of ``directions`` (rows) that
    hold ``energy`` of their squared singular values."""
    _, s, vh = torch.linalg.svd(F.normalize(directions, dim=1), full_matrices=False)
    share = torch.cumsum(s.pow(2), 0) / s.pow(2).sum()
    rank = int((share < energy).sum()) + 1
    return vh[:rank].t()


@register_method
@dataclass
class PGU(IterativeMethod):
    name = "pgu"
    summary = "Gradient ascent on the forget images, projected away from retained identities' directions"
    requires_head = True
    needs = frozenset({"forget", "support"})

    iterations: int = param(10, 1, 100_000, "optimisation steps")
    lr: float = param(1e-5, 1e-8, 1.0, "SGD learning rate")
    energy: float = param(0.9, 0.0, 1.0, "share of the retained class directions' energy protected")

    def setup(self, model: FaceModel, request: UnlearnRequest, generator: torch.Generator) -> None:
        n_classes = model.head.n_classes
        retained = torch.ones(n_classes, dtype=torch.bool, device=model.head.weight.device)
        retained[torch.as_tensor(request.forget_classes, dtype=torch.long)] = False
        if not retained.any():
            raise InvalidParameter("pgu needs at least one retained identity in the head")
        self._basis = protected_subspace(model.head.weight.detach()[retained], self.energy)

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        emb = model(batch.x)
        basis = self._basis
        emb.register_hook(lambda g: g - (g @ basis) @ basis.t())
        logits = functional_call(model.head, {"weight": model.head.weight.detach()}, (emb, batch.y))
        return -F.cross_entropy(logits, batch.y)
