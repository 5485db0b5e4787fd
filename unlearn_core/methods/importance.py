"""Per-parameter importance shared by SSD, Weight Filtering and Weight Pruning.

``parameter_importance`` runs the model's training loss (CosFace cross-entropy with margin, or the
``loss_fn`` given: the attribute task's BCE) over deterministic mini-batches of a ``FaceData`` and returns, per
trainable parameter, the mean absolute gradient (S3 Eq. 1, "sensitivity") and the mean squared
gradient (the diagonal empirical Fisher, used by SSD and as the diagonal-Hessian estimate of S3 §4.2).
Registers no method.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..features import FaceData
from ..model import FaceModel, cosface_loss


@dataclass
class Importance:
    grad_abs: dict[str, torch.Tensor]
    """mean |dL/dw| over mini-batches"""
    fisher: dict[str, torch.Tensor]
    """mean (dL/dw)^2 over mini-batches: the diagonal empirical Fisher"""


LossFn = Callable[[FaceModel, torch.Tensor, torch.Tensor], torch.Tensor]


def parameter_importance(model: FaceModel, data: FaceData, batch_size: int = 16, max_images: int | None = None,
                         generator: torch.Generator | None = None, loss_fn: LossFn = cosface_loss) -> Importance:
    """Gradient magnitude and diagonal Fisher of ``loss_fn`` (default CosFace) on ``data`` for every
    trainable parameter; with ``max_images``, on a random subset of that many images (drawn with
    ``generator``). ``model`` may be any module with ``named_trainable_parameters()``."""
    if max_images is not None and len(data) > max_images:
        data = data.subset(torch.randperm(len(data), generator=generator)[:max_images].sort().values.numpy())
    named = model.named_trainable_parameters()
    grad_abs = {n: torch.zeros_like(p) for n, p in named}
    fisher = {n: torch.zeros_like(p) for n, p in named}
    inputs, labels = data.inputs, data.labels
    was_training = model.training
    model.eval()
    n_batches = 0
    for start in range(0, len(labels), batch_size):
        x, y = inputs[start : start + batch_size], labels[start : start + batch_size]
        loss = loss_fn(model, x, y)
        grads = torch.autograd.grad(loss, [p for _, p in named])
        for (n, _), g in zip(named, grads):
            grad_abs[n] += g.abs()
            fisher[n] += g.pow(2)
        n_batches += 1
    model.train(was_training)
    return Importance({n: v / max(n_batches, 1) for n, v in grad_abs.items()},
                      {n: v / max(n_batches, 1) for n, v in fisher.items()})


def forget_specific(forget: dict[str, torch.Tensor], retain: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Boolean masks of the weights far more important to the forget data than to the retain data:
    ``forget > ratio * retain`` (SSD's selection; the forget weight set W_f of S3 Eq. 2)."""
    return {n: forget[n] > ratio * retain[n] for n in forget}
