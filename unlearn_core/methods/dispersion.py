"""Dispersion and Hard Dispersion unlearning (S0 §4, Eq. 5 and 6).

Minimising ``max(0, m + cos(x_i, x_j))`` over same-identity pairs of the forget batch pushes each
forget identity's embeddings apart (cosine floored at ``-m``). No retain loss in the paper's
version. When the forget data has a single image per identity (the one-shot / selfie setting),
positives are SimCLR-style augmented views of that image (S0 §6): ``views`` views per identity and
batch, drawn from a bank of ``view_bank`` views per image that is encoded through the frozen trunk
once, so each step costs no more than a standard one.

Beyond the paper (all off by default): ``retain_weight`` adds an embedding-distillation term
``mean(1 - cos(f(x_r), f_0(x_r)))`` on ``retain_anchors`` retain images (and their flips) drawn
once, whose original embeddings ``f_0`` are computed once before the first step; the shared
``stop_cs`` early stopping ends the run once the forget identities are dispersed enough; the
shared ``train_blocks`` trains only the last blocks, whose inputs are then computed once.

Measured on LFW (10 forget / 148 retain identities, seed 0, tail-only, idle 2-core CPU; before:
forget mAP 0.990, retain mAP 0.978): the paper's setting reaches forget mAP 0.077 / CS 0.105 with a
retain drop of 0.067 in 1,000 steps (60 s). ``lr=2e-3, momentum=0.9, retain_weight=5,
clip_norm=5, stop_cs=0.05, train_blocks=2`` stops after 430 steps at forget mAP 0.091 / CS 0.108
with a retain drop of 0.007 in 5.7 s (seeds 1 and 2: forget mAP 0.135x / 0.106x before, drops
0.009 / 0.004, 5.4 / 5.0 s). ``stop_cs=0.1`` stops earlier (3.7 s) but leaves 0.17x on seed 1.
Running the frozen blocks once (``FaceModel.split``) changes no number, only the cost: with
``stop_cs=0.1`` the same 240-step run took 11.4 s when they were recomputed at every step, 3.7 s
split. Without clipping, ``lr=1e-3`` needed ``saliency=0.2`` for a drop of 0.021, and
``retain_weight=10`` with momentum 0.9 diverged (every embedding collapsed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InvalidParameter
from ..features import FaceData, augment_chips
from ..model import FaceModel
from ..sampling import flip_mask, random_batch
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
    presets = {"retain-preserving": {"lr": 2e-3, "momentum": 0.9, "retain_weight": 5.0, "clip_norm": 5.0, "stop_cs": 0.05,
                                     "train_blocks": 2},
               "match-retrain": {"stop_at": "retrain", "check_every": 1}}

    margin: float = param(0.2, 0.0, 1.0, "cosine floor is -margin")
    retain_weight: float = param(0.0, 0.0, 100.0, "weight of retain embedding distillation (0 = paper)")
    retain_anchors: int = param(512, 1, 1_000_000, "retain images (with flips) whose original embeddings are kept, drawn once")
    retain_batch: int = param(32, 1, 1024, "retain anchors per step")
    views: int = param(8, 2, 64, "augmented views per identity and batch in the one-shot setting")
    view_bank: int = param(64, 2, 1024, "augmented views encoded per support image in the one-shot setting")

    def data_needs(self) -> frozenset[str]:
        return self.needs | ({"retain"} if self.retain_weight > 0 else set())

    def select(self, request: UnlearnRequest, generator: torch.Generator) -> UnlearnRequest:
        """Keep ``retain_anchors`` random retain images: the distillation term's fixed anchors."""
        if request.retain is None:
            return request
        pick = torch.randperm(len(request.retain), generator=generator)[: self.retain_anchors]
        return dataclasses.replace(request, retain=request.retain.subset(pick.numpy()))

    def setup(self, model: FaceModel, request: UnlearnRequest, generator: torch.Generator) -> None:
        self._anchors = request.retain
        if self._anchors is not None:  # the original's embeddings of the anchors and their flips, once
            embedded = self._anchors.map_inputs(model.embed)
            self._targets = torch.stack([embedded.inputs, embedded.inputs_flipped])
        data = request.forget_data()
        self.one_shot_ = bool(torch.bincount(data.labels.cpu()).max() <= 1)
        if self.one_shot_:
            if request.encode is None:
                raise InvalidParameter("one-shot dispersion needs request.encode to embed augmented views")
            chips = data.chips.repeat(self.view_bank, axis=0)  # view_bank views of image 0, then image 1, ...
            self._bank = request.encode(augment_chips(chips, generator))

    def sample(self, request: UnlearnRequest, generator: torch.Generator) -> Batch:
        data = request.forget_data()
        batch = self._views_batch(data, generator) if self.one_shot_ else self.forget_batch(data, generator)
        if self._anchors is not None:
            idx = random_batch(len(self._anchors), self.retain_batch, generator).to(self._anchors.labels.device)
            flip = flip_mask(len(idx), generator).to(idx.device)
            batch.retain_x, batch.retain_y = self._anchors.batch(idx, flip)
            batch.retain_target = torch.where(flip[:, None].to(self._targets.device), self._targets[1][idx], self._targets[0][idx])
        return batch

    def _views_batch(self, data: FaceData, generator: torch.Generator) -> Batch:
        """``views`` random bank views of each of up to ``batch_size // views`` support images."""
        n_ids = max(1, min(len(data), self.batch_size // self.views))
        pick = torch.randperm(len(data), generator=generator)[:n_ids]
        rows = pick[:, None] * self.view_bank + torch.randint(self.view_bank, (n_ids, self.views), generator=generator)
        return Batch(self._bank[rows.flatten().to(self._bank.device)], data.labels[pick.to(data.labels.device)].repeat_interleave(self.views))

    def stop_inputs(self, request: UnlearnRequest) -> tuple[torch.Tensor, torch.Tensor]:
        """One-shot: a single photo per identity has no compactness, so ``stop_cs`` watches the
        first ``views`` bank views of each support image instead."""
        if not self.one_shot_:
            return super().stop_inputs(request)
        data = request.forget_data()
        rows = (torch.arange(len(data))[:, None] * self.view_bank + torch.arange(self.views)).flatten()
        return self._bank[rows.to(self._bank.device)], data.labels.repeat_interleave(self.views)

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        if batch.retain_x is None:
            return dispersion_loss(model(batch.x), batch.y, self.margin, hard=self.hard)
        out = model(torch.cat([batch.x, batch.retain_x]))  # one forward for both parts (no batch norm to mix them)
        forget, retain = out[: len(batch.x)], out[len(batch.x) :]
        distill = (1 - F.cosine_similarity(retain, batch.retain_target, dim=1)).mean()
        return dispersion_loss(forget, batch.y, self.margin, hard=self.hard) + self.retain_weight * distill


@register_method
@dataclass
class HardDispersion(Dispersion):
    name = "hard_dispersion"
    summary = "Push each embedding away from its closest same-identity neighbour (S0 Eq. 6)"
    hard = True
