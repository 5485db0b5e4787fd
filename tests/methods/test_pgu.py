"""PGU on real LFW faces: per-layer projected gradient ascent from the support sample, retain span from retain images."""
import time

import pytest
import torch
import torch.nn as nn

from unlearn_core.methods import create_method
from unlearn_core.methods.pgu import layer_inputs, protected_subspace


@pytest.mark.fast
def test_protected_subspace_is_orthonormal_and_keeps_the_energy():
    activations = torch.randn(20, 16, generator=torch.Generator().manual_seed(0))
    basis = protected_subspace(activations, 0.9)
    assert torch.allclose(basis.t() @ basis, torch.eye(basis.shape[1]), atol=1e-5)
    assert 1 <= basis.shape[1] <= 16
    assert protected_subspace(activations, 1.0).shape[1] >= basis.shape[1]
    kept = (activations @ basis).pow(2).sum() / activations.pow(2).sum()
    assert kept >= 0.9 - 1e-6


@pytest.mark.fast
def test_protected_subspace_falls_back_to_the_svd_when_eigh_fails(monkeypatch):
    activations = torch.randn(8, 32, generator=torch.Generator().manual_seed(2))
    activations[:, 8:] = 0  # most eigenvalues exactly 0, as in the layer where LAPACK's eigh failed
    expected = protected_subspace(activations, 0.9)

    def fails(_):
        raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "eigh", fails)
    basis = protected_subspace(activations, 0.9)
    assert basis.shape == expected.shape
    assert torch.allclose(basis @ basis.t(), expected @ expected.t(), atol=1e-5)  # the same subspace


@pytest.mark.fast
def test_a_projected_conv_gradient_leaves_the_protected_inputs_unchanged():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    basis = protected_subspace(layer_inputs(conv, x), 1.0)
    g = torch.randn_like(conv.weight).flatten(1)
    step = g - (g @ basis) @ basis.t()
    assert torch.allclose(layer_inputs(conv, x) @ step.t(), torch.zeros(50, 4), atol=1e-4)


def test_pgu_forgets_the_head_classification_from_the_support_sample(lfw_audit):
    started = time.perf_counter()
    run = lfw_audit.run("pgu", one_shot=True)
    print(f"pgu defaults, one-shot: {run.summary()} ({time.perf_counter() - started:.1f}s)")
    assert run.received.forget is None and run.received.retain is not None
    lfw_audit.assert_forgets(run, "head_acc", drop=0.3)
    lfw_audit.assert_retains(run, tolerance=0.05)
    assert all(p.requires_grad for p in run.model.trainable_parameters())


def test_pgu_is_deterministic_and_validates(lfw_audit):
    assert "retain" in create_method("pgu").data_needs()
    lfw_audit.assert_deterministic("pgu", iterations=2, one_shot=True)
    lfw_audit.assert_rejects("pgu", energy=1.5)
