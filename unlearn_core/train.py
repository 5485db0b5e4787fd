"""Fine-tuning with CosFace: builds the original model (all gallery identities) and the retrain
reference (retain identities only), both from the pretrained embedder (S0 §5.5)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .backbones import Backbone
from .features import FaceData
from .model import CosFaceHead, FaceModel, cosface_loss
from .sampling import flip_mask, pk_batch
from .types import Progress


@dataclass(frozen=True)
class TrainConfig:
    """CosFace fine-tuning recipe (S0 §5.5: m=0.4, s=64, SGD momentum 0.9, wd 5e-4, linear decay).

    The paper's lr 1e-3 with a randomly initialised head collapsed this batch-norm-free network to
    a single point within a few steps here; we initialise the head from the L2-normalised class
    means of the pretrained embeddings and use lr 1e-4 with gradient-norm clipping at 5.
    """

    epochs: float = 10.0
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    margin: float = 0.4
    scale: float = 64.0
    clip_norm: float | None = 5.0


@torch.no_grad()
def class_mean_head(model: FaceModel, data: FaceData, n_classes: int, scale: float, margin: float) -> CosFaceHead:
    """A CosFace head whose class weights are the normalised mean embeddings of each class."""
    emb = torch.cat([model.embed(data.inputs[i : i + 256]) for i in range(0, len(data), 256)])
    weight = torch.zeros(n_classes, emb.shape[1], device=emb.device)
    weight.index_add_(0, data.labels, emb)
    return CosFaceHead(F.normalize(weight, dim=1), scale=scale, margin=margin)


def train_cosface(backbone: Backbone, start: int, data: FaceData, n_classes: int, config: TrainConfig = TrainConfig(),
                  seed: int = 0, progress: Progress | None = None) -> FaceModel:
    """Fine-tune stages ``start..`` of a copy of ``backbone`` plus a CosFace head on ``data``."""
    device = data.inputs.device
    model = FaceModel(backbone.module, start).clone().to(device)
    model.head = class_mean_head(model, data, n_classes, config.scale, config.margin).to(device)
    generator = torch.Generator().manual_seed(seed)
    steps = max(1, int(config.epochs * len(data) / config.batch_size))
    optimiser = torch.optim.SGD(model.trainable_parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / steps)
    model.train()
    for step in range(steps):
        idx = pk_batch(data.labels, config.batch_size, generator)
        x, y = data.batch(idx.to(device), flip_mask(len(idx), generator))
        loss = cosface_loss(model, x, y)
        optimiser.zero_grad()
        loss.backward()
        if config.clip_norm:
            torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), config.clip_norm)
        optimiser.step()
        schedule.step()
        if progress and (step % 20 == 0 or step == steps - 1):
            progress((step + 1) / steps, f"CosFace fine-tuning {step + 1}/{steps}, loss {loss.item():.3f}")
    model.zero_grad(set_to_none=True)  # the returned model carries no training state
    return model.eval()
