"""PGU on real LFW faces: projected gradient ascent from the support sample only."""
import pytest
import torch

from unlearn_core.methods import create_method
from unlearn_core.methods.pgu import protected_subspace


@pytest.mark.fast
def test_protected_subspace_is_orthonormal_and_keeps_the_energy():
    directions = torch.randn(20, 16, generator=torch.Generator().manual_seed(0))
    basis = protected_subspace(directions, 0.9)
    assert torch.allclose(basis.t() @ basis, torch.eye(basis.shape[1]), atol=1e-5)
    assert 1 <= basis.shape[1] <= 16
    assert protected_subspace(directions, 1.0).shape[1] >= basis.shape[1]


def test_pgu_forgets_the_head_classification_from_the_support_sample(lfw_audit):
    run = lfw_audit.run("pgu", one_shot=True)
    assert run.received.retain is None and run.received.forget is None
    lfw_audit.assert_forgets(run, "head_acc", drop=0.3)
    lfw_audit.assert_retains(run, tolerance=0.05)


def test_pgu_is_deterministic_and_validates(lfw_audit):
    assert "retain" not in create_method("pgu").data_needs()
    lfw_audit.assert_deterministic("pgu", iterations=2, one_shot=True)
    lfw_audit.assert_rejects("pgu", energy=1.5)
