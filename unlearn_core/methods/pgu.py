"""PGU: projected gradient unlearning (Hoang et al., WACV 2024; a baseline of S2 Tables 1-4).

Hoang et al.'s algorithm, applied to the trainable layers (the tail and the CosFace head; the
trunk below is frozen in this project):
1. for every trainable layer (each Conv2d and Linear weight, and the head's class weights),
   collect the layer's input activations on retain training images (convolutions: their im2col
   patches; the head: the normalised embeddings it compares with its rows);
2. keep the top principal directions of those activations whose squared singular values reach
   ``energy`` of the total (GPM's criterion, Saha et al. 2021; we use GPM's base threshold 0.97);
3. ascend the forget loss (cross-entropy through the CosFace head, as S2 describes PGU: "gradient
   ascent updates enforcing orthogonality to important directions for the training data"), each
   weight gradient projected onto the orthogonal complement of its layer's retained span
   (``G <- G - G U U^T``), so retained inputs meet unchanged weights to first order.
Parameters that are not layer weights (biases, per-channel affines) get no update: GPM only
protects weight matrices, and an unprojected bias would move every retained output.

Data: the retain span needs retain images (S2 lists PGU among the methods with partial access
to the training data); the forget loss reads the forget set, or the support sample in the
one-shot setting (S2 runs PGU there). Defaults: 10 steps, energy 0.97, 256 random retain images
for the activations, lr 1e-3 (measured on the LFW fixture, one-shot, 10 steps: lr 1e-5 moved
nothing (forget head acc 1.00 -> 1.00); 1e-3 gave forget head acc 1.00 -> 0.29, forget mAP
1.00 -> 0.80, retain mAP 0.998 -> 0.999; 1e-2 collapsed retain mAP to 0.08: the first-order
protection does not hold for large steps). Not tuned on a validation split.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..features import FaceData
from ..model import FaceModel
from .base import Batch, Budget, IterativeMethod, Progress, UnlearnRequest, param, register_method


def protected_subspace(activations: torch.Tensor, energy: float) -> torch.Tensor:
    """Orthonormal columns (``d x k``) spanning the top principal directions of ``activations``
    (``n x d`` rows) that hold ``energy`` of their squared singular values (GPM)."""
    gram = activations.t().double() @ activations.double()
    try:
        eigvals, eigvecs = torch.linalg.eigh(gram)
        eigvals, eigvecs = eigvals.flip(0), eigvecs.flip(1)
    except torch.linalg.LinAlgError:
        # LAPACK's eigh can fail to converge when most eigenvalues are exactly 0 (measured: LFW seed 2,
        # 256 retain rows of a 2,304-column layer, 2,048 columns all zero); the SVD of the same symmetric
        # PSD matrix gives its eigenpairs, in descending order.
        eigvecs, eigvals, _ = torch.linalg.svd(gram)
    eigvals = eigvals.clamp(min=0)
    share = torch.cumsum(eigvals, 0) / eigvals.sum().clamp(min=1e-30)
    rank = min(int((share < energy).sum()) + 1, len(eigvals))
    return eigvecs[:, :rank].to(activations.dtype)


def layer_inputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module``'s inputs ``x`` as rows matching its flattened weight's columns (im2col for convolutions)."""
    if isinstance(module, nn.Conv2d):
        patches = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    return x.reshape(-1, x.shape[-1])


@register_method
@dataclass
class PGU(IterativeMethod):
    name = "pgu"
    summary = "Gradient ascent on the forget images, each layer's gradient projected off the retain activations' span (Hoang et al. 2024)"
    requires_head = True
    needs = frozenset({"forget", "support", "retain"})

    iterations: int = param(10, 1, 100_000, "optimisation steps")
    lr: float = param(1e-3, 1e-8, 1.0, "SGD learning rate")
    energy: float = param(0.97, 0.0, 1.0, "share of each layer's retain-activation energy protected (GPM threshold)")
    retain_images: int = param(256, 1, 10**7, "random retain images whose activations span the protected subspaces")

    @torch.no_grad()
    def _bases(self, model: FaceModel, retain: FaceData, generator: torch.Generator) -> list[tuple[nn.Parameter, torch.Tensor]]:
        layers = [m for block in model.trainable_blocks() for m in block.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        seen: dict[nn.Module, list[torch.Tensor]] = {m: [] for m in layers}
        hooks = [m.register_forward_pre_hook(lambda m, args: seen[m].append(layer_inputs(m, args[0]))) for m in layers]
        idx = torch.randperm(len(retain), generator=generator)[: self.retain_images].to(retain.labels.device)
        was_training = model.training
        model.eval()
        emb = torch.cat([model.embed(retain.inputs[chunk]) for chunk in idx.split(64)])
        model.train(was_training)
        for hook in hooks:
            hook.remove()
        return [(m.weight, protected_subspace(torch.cat(seen[m]), self.energy)) for m in layers] + \
            [(model.head.weight, protected_subspace(emb, self.energy))]

    def setup(self, model: FaceModel, request: UnlearnRequest, generator: torch.Generator) -> None:
        bases = self._bases(model, request.retain, generator)
        projected = {id(p) for p, _ in bases}
        for p in model.trainable_parameters():
            p.requires_grad_(id(p) in projected)
        self._hooks = [p.register_hook(lambda g, u=u: (g.flatten(1) - (g.flatten(1) @ u) @ u.t()).view_as(g)) for p, u in bases]
        self.protected_dims_ = [(tuple(p.shape), u.shape[1]) for p, u in bases]

    def _unlearn(self, model: FaceModel, request: UnlearnRequest, budget: Budget, progress: Progress,
                 generator: torch.Generator) -> None:
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        try:
            super()._unlearn(model, request, budget, progress, generator)
        finally:
            for hook in self._hooks:
                hook.remove()
            for p in model.trainable_parameters():
                p.requires_grad_(True)

    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        return -F.cross_entropy(model.logits(batch.x, batch.y), batch.y)
