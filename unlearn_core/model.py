"""The model that is audited: a staged backbone plus a CosFace identity head.

``FaceModel`` trains only stages ``start..`` (``start = backbone.tail_start`` on the CPU fast
path, 0 for the full network); its inputs are the activations entering stage ``start``.
``clone()`` deep-copies the trainable part and shares the frozen one, so unlearning always works
on a copy and the original stays untouched.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import StagedEmbedder


class CosFaceHead(nn.Module):
    """Large-margin cosine classifier (Wang et al. 2018): ``s * (cos(theta_y) - m)`` for the target."""

    def __init__(self, weight: torch.Tensor, scale: float = 64.0, margin: float = 0.4):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.scale, self.margin = scale, margin

    @property
    def n_classes(self) -> int:
        return self.weight.shape[0]

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(embeddings, dim=1) @ F.normalize(self.weight, dim=1).t()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits; with ``labels`` the margin is subtracted from each target's cosine (training)."""
        cos = self.cosine(embeddings)
        if labels is not None:
            cos = cos - self.margin * F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return self.scale * cos


class BlockChain(StagedEmbedder):
    """Blocks run in order, one stage each (the trainable suffix of another model, see ``FaceModel.split``)."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(blocks)


class FaceModel(nn.Module):
    """Stages ``start..`` of a backbone (trainable) on top of frozen, shared earlier stages."""

    def __init__(self, backbone: StagedEmbedder, start: int, head: CosFaceHead | None = None):
        super().__init__()
        self.backbone = backbone
        self.start = start
        self.head = head
        for i, stage in enumerate(backbone.stages):
            stage.requires_grad_(i >= start)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) embeddings of inputs at level ``start``."""
        return self.backbone.forward_from(inputs, self.start)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.normalize(self(inputs), dim=1)

    def logits(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.head is None:
            raise RuntimeError("this model has no identity head")
        return self.head(self(inputs), labels)

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = [p for stage in self.backbone.stages[self.start:] for p in stage.parameters()]
        return params + (list(self.head.parameters()) if self.head is not None else [])

    def trainable_blocks(self) -> list[nn.Module]:
        """Stages ``start..`` as a sequence of blocks, input to output (a stage's children when it has several)."""
        return [block for stage in self.backbone.stages[self.start:]
                for block in (list(stage.children()) if isinstance(stage, nn.Sequential) else [stage])]

    def named_trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        ids = {id(p) for p in self.trainable_parameters()}
        return [(n, p) for n, p in self.named_parameters() if id(p) in ids]

    def split(self, n_blocks: int) -> tuple[Callable[[torch.Tensor], torch.Tensor], FaceModel]:
        """``(prefix, suffix)``: ``prefix`` runs all but the last ``n_blocks`` trainable blocks (no
        grad); ``suffix`` is a model of those last blocks and the head, sharing their parameters, so
        ``suffix(prefix(x)) == self(x)`` and training ``suffix`` trains this model's last blocks."""
        blocks = self.trainable_blocks()
        if not 1 <= n_blocks <= len(blocks):
            raise ValueError(f"n_blocks must be in [1, {len(blocks)}], got {n_blocks}")
        frozen = nn.Sequential(*blocks[: len(blocks) - n_blocks])

        @torch.no_grad()
        def prefix(x: torch.Tensor) -> torch.Tensor:
            return frozen(x)

        return prefix, FaceModel(BlockChain(blocks[len(blocks) - n_blocks :]), 0, self.head).train(self.training)

    def clone(self) -> FaceModel:
        """A copy whose trainable stages and head are new tensors (without gradients); frozen stages are shared."""
        memo = {id(stage): stage for stage in self.backbone.stages[: self.start]}
        twin = copy.deepcopy(self, memo)
        twin.zero_grad(set_to_none=True)
        return twin

    def frozen_copy(self) -> FaceModel:
        """A clone in eval mode with no gradients: a fixed teacher or reference for a method."""
        return self.clone().eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device


def cosface_loss(model: FaceModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The CosFace training loss of ``model``'s head on inputs ``x`` with labels ``y`` (cross-entropy over margin logits)."""
    return F.cross_entropy(model.logits(x, y), y)
