"""boundary_shrink (S0 Eq. 9): FGSM nearest-other labels, data-free."""
import torch

from unlearn_core.methods.boundary_shrink import fgsm_neighbour_labels

STEPS = 10


def test_fgsm_labels_point_away_from_the_true_identity(lfw_audit):
    data = lfw_audit.ws.parts.forget_train
    labels = fgsm_neighbour_labels(lfw_audit.ws.original, data.inputs, data.labels, epsilon=1.0)
    assert (labels != data.labels).float().mean() > 0.5
    assert torch.equal(fgsm_neighbour_labels(lfw_audit.ws.original, data.inputs, data.labels, epsilon=0.0), data.labels)


def test_boundary_shrink_forgets_without_retain_data(lfw_audit):
    run = lfw_audit.run("boundary_shrink", iterations=STEPS)
    assert run.received.retain is None
    lfw_audit.assert_forgets(run, "head_acc", drop=0.5)
    lfw_audit.assert_retains(run, tolerance=0.05)


def test_boundary_shrink_is_deterministic(lfw_audit):
    lfw_audit.assert_deterministic("boundary_shrink")
