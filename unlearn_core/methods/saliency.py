"""SalUn weight saliency (Fan et al., ICLR 2024), shared by every ``IterativeMethod``.

``saliency_mask`` takes the gradient of the forget loss over the whole forget data (the CosFace
loss with the true labels, i.e. the gradient that gradient ascent follows) and keeps the
``fraction`` of trainable weights with the largest gradient magnitude, thresholded globally
across all trainable tensors as in SalUn. Switch it on for any iterative method with its
``saliency`` parameter (e.g. ``saliency=0.5`` is "SalUn-0.5"); the loop then zeroes the gradient
of every weight outside the mask before each step (weight decay, 0 by default, still applies to
all weights, as in SalUn's code). S0's best Lipschitz run estimated saliency from an embedding-norm
loss instead: ``lipschitz`` ranks by that loss by default (its ``saliency_score``); every other
method uses the CosFace forget loss ("CFGA" in S0 Table 5).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import InvalidParameter
from ..features import FaceData
from ..model import FaceModel

ForgetLoss = Callable[[FaceModel, torch.Tensor, torch.Tensor], torch.Tensor]


def saliency_mask(model: FaceModel, data: FaceData, fraction: float, loss: ForgetLoss,
                  batch_size: int = 128) -> list[torch.Tensor]:
    """Boolean masks, one per ``model.trainable_parameters()`` tensor, keeping the top ``fraction``
    of weights by ``|d loss / d w|`` summed over ``data`` (original and flipped inputs)."""
    if not 0.0 < fraction <= 1.0:
        raise InvalidParameter(f"saliency fraction must be in (0, 1], got {fraction!r}")
    if model.head is None:
        raise InvalidParameter("weight saliency needs a model with an identity head")
    params = model.trainable_parameters()
    grads = [torch.zeros_like(p) for p in params]
    for inputs in (data.inputs, data.inputs_flipped):
        for i in range(0, len(data), batch_size):
            value = loss(model, inputs[i : i + batch_size], data.labels[i : i + batch_size])
            for g, d in zip(grads, torch.autograd.grad(value, params, allow_unused=True)):
                if d is not None:
                    g += d
    magnitude = torch.cat([g.abs().flatten() for g in grads])
    keep = max(1, round(fraction * magnitude.numel()))
    threshold = torch.topk(magnitude, keep).values[-1]
    return [g.abs() >= threshold for g in grads]


def apply_mask(model: FaceModel, mask: list[torch.Tensor]) -> None:
    """Zero the gradients of weights outside ``mask`` (call between ``backward`` and ``step``)."""
    for p, m in zip(model.trainable_parameters(), mask):
        if p.grad is not None:
            p.grad.mul_(m)
