"""CF-k, catastrophic forgetting of the last k layers (Goel et al. 2022; a baseline of S3).

Only the last ``k`` layers are fine-tuned on retain images with the CosFace loss; earlier layers
stay as they are. Layers, counted from the output: the identity head (1), the embedding ``fc``
(2), then the residual blocks of the last convolutional stage, and so on back to the first
trainable stage. ``k`` larger than the number of trainable layers fine-tunes all of them.
Defaults: the original model's recipe (SGD lr 1e-4, momentum 0.9, CosFace loss), 50 steps;
lr 1e-3 collapsed the embeddings (CS 0.999) here. Measured at the defaults, `make bench` (LFW, 10
forget / 40 retained identities, 3 seeds): forget head accuracy 100 -> 92 %, retrieval unchanged:
two layers fine-tuned for 50 steps forget little.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..model import FaceModel
from .base import Batch, IterativeMethod, cosface_loss, param, register_method


def trainable_layers(model: FaceModel) -> list[nn.Module]:
    """The trainable layers from input to output: each child of each trainable stage, then the head."""
    return model.trainable_blocks() + ([model.head] if model.head is not None else [])


@register_method
@dataclass
class CFk(IterativeMethod):
    name = "cf_k"
    summary = "Fine-tune only the last k layers on retain data (catastrophic forgetting)"
    requires_head = True
    needs = frozenset({"forget", "support", "retain"})

    k: int = param(2, 1, 1000, "number of final layers fine-tuned (head = 1, embedding fc = 2, ...)")
    iterations: int = param(50, 1, 100_000, "optimisation steps")
    lr: float = param(1e-4, 1e-8, 1.0, "SGD learning rate")
    momentum: float = param(0.9, 0.0, 0.999, "SGD momentum")

    def _optimiser(self, model: FaceModel) -> torch.optim.Optimizer:
        params = [p for layer in trainable_layers(model)[-self.k:] for p in layer.parameters()]
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        return cosface_loss(model, batch.retain_x, batch.retain_y)
