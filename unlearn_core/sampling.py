"""Batch samplers shared by training and unlearning."""
from __future__ import annotations

import torch


def pk_batch(labels: torch.Tensor, batch_size: int, generator: torch.Generator, per_identity: int = 4) -> torch.Tensor:
    """Indices of a batch of ``batch_size`` with ``per_identity`` images from each sampled identity,
    so every anchor has positives (identities with fewer images are sampled with replacement).
    With fewer identities than ``batch_size / per_identity``, each identity contributes more images.
    """
    labels = labels.cpu()
    classes = labels.unique()
    n_ids = min(len(classes), max(1, batch_size // per_identity))
    chosen = classes[torch.randperm(len(classes), generator=generator)[:n_ids]]
    quota = torch.full((n_ids,), batch_size // n_ids)
    quota[: batch_size % n_ids] += 1
    out = []
    for c, k in zip(chosen.tolist(), quota.tolist()):
        members = torch.nonzero(labels == c).flatten()
        if len(members) >= k:
            pick = members[torch.randperm(len(members), generator=generator)[:k]]
        else:
            pick = members[torch.randint(len(members), (k,), generator=generator)]
        out.append(pick)
    return torch.cat(out)


def random_batch(n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(n, (min(batch_size, n) if n else 0,), generator=generator)


def flip_mask(n: int, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p
