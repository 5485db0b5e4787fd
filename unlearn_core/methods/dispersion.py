"""Dispersion and Hard Dispersion unlearning (S0 §4, Eq. 5 and 6).

Minimising ``max(0, m + cos(x_i, x_j))`` over same-identity pairs of the forget batch pushes each
forget identity's embeddings apart (cosine floored at ``-m``). No retain loss in the paper's
version. When the forget data has a single image per identity (the one-shot / selfie setting),
positives are SimCLR-style augmented views of that image (S0 §6): ``views`` views per identity and
batch, drawn from a bank of ``view_bank`` views per image that is encoded through the frozen trunk
once, so each step costs no more than a standard one.

Beyond the paper (both off by default): ``retain_weight`` adds an embedding-distillation term
``mean(1 - cos(f(x_r), f_0(x_r)))`` on retain images against the frozen original ``f_0``, and the
shared ``stop_cs`` early stopping ends the run once the forget identities are dispersed enough.

Measured on LFW (10 forget / 148 retain identities, seed 0, tail-only, 2-core CPU; before: forget
mAP 0.990, retain mAP 0.978): the paper's setting reaches forget mAP 0.077 / CS 0.105 with a
retain drop of 0.067 in 1,000 steps; ``lr=1e-3, momentum=0.9, retain_weight=5, stop_cs=0.05,
check_every=5, saliency=0.2`` stops after 270 steps at forget mAP 0.110 / CS 0.138 with a retain
drop of 0.021. ``retain_weight=10`` with momentum 0.9 diverged (every embedding collapsed).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InvalidParameter
from ..features import augment_chips
from ..model import FaceModel
from .base import Batch, IterativeMethod, UnlearnRequest, cosine_pairs, param, register_method


def dispersion_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float, hard: bool = False) -> torch.Tensor:
    """Eq. 5 (mean over each anchor's positives) or Eq. 6 (hardest positive only), averaged over
    anchors that have at least one positive in the batch."""
    sims = cosine_pairs(embeddings)
    positive = (labels[:, None] == labels[None, :]) & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    anchors = positive.any(1)
    if not anchors.any():
        return embeddings.sum() * 0.0
    sims, positive = sims[anchors], positive[anchors]
    if hard:
        hardest = sims.masked_fill(~positive, -2.0).max(1).values
        return F.relu(margin + hardest).mean()
    per_pair = F.relu(margin + sims) * positive
    return (per_pair.sum(1) / positive.sum(1)).mean()


@register_method
@dataclass
class Dispersion(IterativeMethod):
    name = "dispersion"
    summary = "Push same-identity embeddings apart (S0 Eq. 5)"
    hard = False

    margin: float = param(0.2, 0.0, 1.0, "cosine floor is -margin")
    retain_weight: float = param(0.0, 0.0, 100.0, "weight of retain embedding distillation (0 = paper)")
    views: int = param(8, 2, 64, "augmented views per identity and batch in the one-shot setting")
    view_bank: int = param(64, 2, 1024, "augmented views encoded per support image in the one-shot setting")

    def data_needs(self) -> frozenset[str]:
        return self.needs | ({"retain"} if self.retain_weight > 0 else set())

    def setup(self, model: FaceModel, request: UnlearnRequest, generator: torch.Generator) -> None:
        self._reference = model.frozen_copy() if self.retain_weight > 0 else None
        data = request.forget_data()
        self.one_shot_ = bool(torch.bincount(data.labels.cpu()).max() <= 1)
        if self.one_shot_:
            if request.encode is None:
                raise InvalidParameter("one-shot dispersion needs request.encode to embed augmented views")
            chips = data.chips.repeat(self.view_bank, axis=0)  # view_bank views of image 0, then image 1, ...
            self._bank = request.encode(augment_chips(chips, generator))

    def sample(self, request: UnlearnRequest, generator: torch.Generator) -> Batch:
        if not self.one_shot_:
            return super().sample(request, generator)
        data = request.forget_data()
        n_ids = max(1, min(len(data), self.batch_size // self.views))
        pick = torch.randperm(len(data), generator=generator)[:n_ids]
        rows = pick[:, None] * self.view_bank + torch.randint(self.view_bank, (n_ids, self.views), generator=generator)
        batch = Batch(self._bank[rows.flatten().to(self._bank.device)], data.labels[pick.to(data.labels.device)].repeat_interleave(self.views))
        if request.retain is not None:
            retain = super().sample(request, generator)
            batch.retain_x, batch.retain_y = retain.retain_x, retain.retain_y
        return batch

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        loss = dispersion_loss(model(batch.x), batch.y, self.margin, hard=self.hard)
        if self._reference is not None and batch.retain_x is not None:
            with torch.no_grad():
                target = self._reference(batch.retain_x)
            loss = loss + self.retain_weight * (1 - F.cosine_similarity(model(batch.retain_x), target, dim=1)).mean()
        return loss


@register_method
@dataclass
class HardDispersion(Dispersion):
    name = "hard_dispersion"
    summary = "Push each embedding away from its closest same-identity neighbour (S0 Eq. 6)"
    hard = True
