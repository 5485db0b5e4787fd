"""Weight Pruning (S3 §4.2, §4.3), applied to identity classes.

Importance (S3 §4.2): ``I(w) = alpha * |dL/dw| + beta * 1/2 * H_ii * w^2`` with the diagonal
Hessian ``H_ii`` estimated by the diagonal empirical Fisher (mean squared gradient). It is computed
twice: ``I_f`` on the forget identities' images, ``I_r`` on retain images.

Our reading of the three thresholds (S3 leaves the data of I and the set they range over open):
the forget weight set is ``W_f = {w : I_f(w) > ratio * I_r(w)}`` (as in Weight Filtering / SSD),
and within W_f, per tensor, ``tau_l, tau_m, tau_h`` are the 25th, 50th and 75th percentiles of the
retain importance ``I_r``, so that the rules remove what the retained identities need least:
* ``I_r < tau_l``, or ``I_r == 0`` (unused by the retained task, also when tau_l is 0): set to zero;
* ``tau_l <= I_r < tau_h``: scaled by ``exp(-lambda * I_r / tau_h)`` (importance normalised by
  ``tau_h`` so ``lambda`` is unit-free);
* ``I_r >= tau_h``: kept, and fine-tuned with the reduced learning rate ``slow_lr_scale * lr``.
``tau_m`` has no rule of its own in §4.2; it is reported (``thresholds_``) but not used.
Then the shared constrained fine-tuning on retain images (§4.3): zeroed and scaled weights stay
within ``epsilon`` of their modified values.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import param, register_method
from .importance import Importance, forget_specific
from .weight_filtering import ConstrainedUnlearning, Masks


@register_method
@dataclass
class WeightPruning(ConstrainedUnlearning):
    name = "weight_pruning"
    summary = "Zero / exponentially shrink forget-specific weights by importance tiers, then constrained fine-tuning (S3 §4.2)"

    ratio: float = param(10.0, 0.0, 1e6, "W_f: forget importance > ratio x retain importance")
    alpha: float = param(1.0, 0.0, 1e6, "weight of the gradient magnitude in I(w)")
    beta: float = param(1.0, 0.0, 1e6, "weight of the curvature term 1/2 H_ii w^2 in I(w)")
    decay: float = param(1.0, 0.0, 100.0, "lambda: middle-tier weights scale by exp(-lambda I / tau_h)")
    slow_lr_scale: float = param(0.1, 0.0, 1.0, "alpha_r / lr for the top tier (I >= tau_h)")

    def importance(self, imp: Importance, name: str, w: torch.Tensor) -> torch.Tensor:
        return self.alpha * imp.grad_abs[name] + self.beta * 0.5 * imp.fisher[name] * w.pow(2)

    def modify(self, params: dict[str, torch.Tensor], forget: Importance, retain: Importance,
               generator: torch.Generator) -> Masks:
        i_f = {n: self.importance(forget, n, p) for n, p in params.items()}
        i_r = {n: self.importance(retain, n, p) for n, p in params.items()}
        selected = forget_specific(i_f, i_r, self.ratio)
        masks: Masks = {}
        self.thresholds_: dict[str, tuple[float, float, float]] = {}
        for name, p in params.items():
            members = i_r[name][selected[name]].float()
            if members.numel() == 0:
                continue
            low, mid, high = torch.quantile(members, torch.tensor([0.25, 0.5, 0.75], device=members.device)).tolist()
            self.thresholds_[name] = (low, mid, high)
            imp = i_r[name]
            zero = selected[name] & ((imp < low) | (imp == 0))  # unused by the retained task: the lowest tier
            shrink = selected[name] & (imp >= low) & (imp < high)
            scale = torch.exp(-self.decay * imp / max(high, 1e-30))
            p.copy_(torch.where(zero, torch.zeros_like(p), torch.where(shrink, p * scale, p)))
            masks[name] = zero | shrink
            self._slow[name] = selected[name] & (imp >= high)
        return masks
