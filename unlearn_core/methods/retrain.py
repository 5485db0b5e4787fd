"""Retrain: the gold standard. Fine-tune the *pretrained* embedder on the retained identities only,
with exactly the recipe that built the original model (``train_cosface``: CosFace m/s taken from
the original head, head initialised from class means, SGD lr 1e-4, momentum 0.9, wd 5e-4, clip 5,
linear decay, 10 epochs). The head keeps every class row so the model is comparable with the
original; forget rows start at zero and receive no positives.

The original model is not used except for its level (``start``) and head shape: the weights come
from ``request.pretrained``. With the defaults and the same seed the result equals
``Workspace.retrain_model()``. A ``Budget`` of ``iterations`` shortens the schedule to that many
steps (the linear decay then spans the shorter run); a time budget is not supported.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InvalidParameter
from ..model import FaceModel
from ..train import TrainConfig, train_cosface
from .base import Budget, Progress, UnlearningMethod, UnlearnRequest, param, register_method


@register_method
@dataclass
class Retrain(UnlearningMethod):
    name = "retrain"
    summary = "Fine-tune the pretrained embedder on retained identities only (the gold standard)"
    requires_head = True
    needs = frozenset({"retain"})
    budget_counts = "optimisation steps of the fine-tuning (they cap ``epochs``; Budget.seconds is not checked)"

    epochs: float = param(10.0, 0.01, 1000.0, "passes over the retained images")
    lr: float = param(1e-4, 1e-8, 1.0, "SGD learning rate (linearly decayed to 0)")
    momentum: float = param(0.9, 0.0, 0.999, "SGD momentum")
    weight_decay: float = param(5e-4, 0.0, 1.0, "SGD weight decay")
    batch_size: int = param(32, 2, 1024, "PK batch size")
    clip_norm: float = param(5.0, 0.0, 1000.0, "gradient-norm clipping (0 = off)")

    def _unlearn(self, model: FaceModel, request: UnlearnRequest, budget: Budget, progress: Progress,
                 generator: torch.Generator) -> None:
        if request.pretrained is None:
            raise InvalidParameter("retrain needs the pretrained backbone in the request (request.pretrained)")
        retain = request.retain
        epochs = self.epochs
        if budget.iterations is not None:  # +0.5: train_cosface floors epochs * n / batch_size to whole steps
            epochs = min(epochs, (budget.iterations + 0.5) * self.batch_size / len(retain))
        config = TrainConfig(epochs=epochs, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                             batch_size=self.batch_size, margin=model.head.margin, scale=model.head.scale,
                             clip_norm=self.clip_norm or None)
        trained = train_cosface(request.pretrained, model.start, retain, model.head.n_classes, config,
                                seed=generator.initial_seed(), progress=progress)
        weights = dict(trained.named_trainable_parameters())
        with torch.no_grad():
            for name, p in model.named_trainable_parameters():
                p.copy_(weights[name])
        self.n_iter_ = max(1, int(epochs * len(retain) / self.batch_size))
