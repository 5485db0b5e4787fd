"""Weight Filtering (S3 §4.1, §4.3), applied to identity classes.

Two phases, ``w' = psi(Phi(w0, j, W_f), W_r)``:

Phi, selective modification. Sensitivities are gradient magnitudes of the CosFace loss (Eq. 1):
``S_r(w)`` on retain images (the "standard loss") and ``I_f(w)`` on the forget identities' images.
S3 defines the forget weight set W_f (Eq. 2) as the weights that influence the unlearned label;
our reading: ``W_f = {w : I_f(w) > ratio * S_r(w)}``, the shared selection also used by SSD.
The composite score is ``S_r * I_f``; within W_f, weights whose composite score is below
``tau`` (the ``percentile``-th percentile of the composite over W_f) are set to 0 (``fill="zero"``)
or to N(0, sigma^2) (``fill="noise"``, sigma relative to that tensor's weight std), the others keep
their value; a W_f weight with a zero composite (the retained task does not use it at all) is
always below tau, also when tau is 0 (without this, a W_f made mostly of such weights, as the
forgotten attribute's head row in the attribute task, gives tau = 0 and filters nothing).
This keeps the "modify below tau" rule of S3 while sparing the W_f weights the
retained identities also rely on most. The influence-function pre-selection of training points
(S3's I(x_i) with H^-1) is not used: the forget identities' images are the points to unlearn.

psi, constrained fine-tuning (§4.3): CosFace fine-tuning on retain images; after every step each
modified weight is clipped back into ``[w' - epsilon, w' + epsilon]`` around its modified value.
``ConstrainedUnlearning`` (the shared two-phase skeleton) is reused by ``weight_pruning``, and its
``select_weights`` / ``snapshot_slow`` / ``after_step`` by the multi-label attribute task (``attributes/task.py``),
where the losses are BCE on the forgotten and on the retained attributes.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch

from ..model import FaceModel
from .base import Batch, IterativeMethod, UnlearnRequest, cosface_loss, param, register_method
from .importance import Importance, forget_specific, parameter_importance

Masks = dict[str, torch.Tensor]


@dataclass
class ConstrainedUnlearning(IterativeMethod):
    """Modify selected weights once (``modify``), then fine-tune on retain images keeping the
    modified weights within ``epsilon`` of their new values; weights in ``self._slow`` move at
    ``slow_lr_scale`` times the learning rate."""
    requires_head = True

    needs = frozenset({"forget", "support", "retain"})
    iterations: int = param(30, 1, 100_000, "constrained fine-tuning steps on retain images")
    lr: float = param(1e-4, 1e-8, 1.0, "SGD learning rate of the fine-tuning")
    momentum: float = param(0.9, 0.0, 0.999, "SGD momentum")
    epsilon: float = param(1e-3, 0.0, 10.0, "modified weights stay within epsilon of their modified values")
    importance_batch: int = param(16, 1, 1024, "mini-batch size for the importance estimates")
    retain_images: int | None = param(256, 1, 10**7, "random retain images for the retain importance (None: all)", optional=True)
    slow_lr_scale = 1.0

    def setup(self, model: FaceModel, request: UnlearnRequest, generator: torch.Generator) -> None:
        forget = parameter_importance(model, request.forget_data(), self.importance_batch)
        retain = parameter_importance(model, request.retain, self.importance_batch, self.retain_images, generator)
        self.select_weights(dict(model.named_trainable_parameters()), forget, retain, generator)

    def select_weights(self, params: dict[str, torch.Tensor], forget: Importance, retain: Importance, generator: torch.Generator) -> None:
        """Phase Phi: modify the selected weights of ``params`` in place and remember them for the constraint."""
        self._slow: Masks = {}
        with torch.no_grad():
            modified = self.modify(params, forget, retain, generator)
        self._constrained = {n: (m, params[n].detach()[m].clone()) for n, m in modified.items() if m.any()}
        self.n_modified_ = sum(int(m.sum()) for m in modified.values())

    @abstractmethod
    def modify(self, params: dict[str, torch.Tensor], forget: Importance, retain: Importance,
               generator: torch.Generator) -> Masks:
        """Change the selected weights in place; return a mask of the modified ones per tensor."""

    def snapshot_slow(self, model: FaceModel) -> None:
        """Before a step: remember the slow weights, so ``after_step`` can scale their update."""
        if self._slow:
            params = dict(model.named_trainable_parameters())
            self._before = {n: params[n].detach()[m].clone() for n, m in self._slow.items()}

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        self.snapshot_slow(model)
        return cosface_loss(model, batch.retain_x, batch.retain_y)

    def after_step(self, model: FaceModel) -> None:
        params = dict(model.named_trainable_parameters())
        with torch.no_grad():
            for name, mask in self._slow.items():
                before = self._before[name]
                params[name][mask] = before + self.slow_lr_scale * (params[name][mask] - before)
            for name, (mask, value) in self._constrained.items():
                params[name][mask] = torch.clamp(params[name][mask], value - self.epsilon, value + self.epsilon)


@register_method
@dataclass
class WeightFiltering(ConstrainedUnlearning):
    name = "weight_filtering"
    summary = "Zero (or noise) forget-specific weights, then constrained fine-tuning on retain data (S3 §4.1)"

    ratio: float = param(10.0, 0.0, 1e6, "W_f: forget sensitivity > ratio x retain sensitivity")
    percentile: float = param(90.0, 0.0, 100.0, "tau: filter W_f weights whose composite score is below this percentile")
    fill: str = param("zero", choices=("zero", "noise"), help="filtered weights become 0 or N(0, sigma^2)")
    sigma: float = param(0.01, 0.0, 10.0, "noise std for fill='noise', relative to the tensor's weight std")

    def modify(self, params: dict[str, torch.Tensor], forget: Importance, retain: Importance,
               generator: torch.Generator) -> Masks:
        selected = forget_specific(forget.grad_abs, retain.grad_abs, self.ratio)
        masks = {}
        for name, p in params.items():
            composite = retain.grad_abs[name] * forget.grad_abs[name]
            members = composite[selected[name]]
            if members.numel() == 0:
                continue
            tau = torch.quantile(members.float(), self.percentile / 100.0) if self.percentile < 100 else members.max() + 1
            mask = selected[name] & ((composite < tau) | (composite == 0))  # unused by the retained task: the lowest score
            fill = torch.zeros_like(p)
            if self.fill == "noise":
                fill = torch.randn(p.shape, generator=generator).to(p.device) * self.sigma * p.std()
            p.copy_(torch.where(mask, fill, p))
            masks[name] = mask
        return masks
