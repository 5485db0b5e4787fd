"""contrastive (S4 Eq. 5-9) on real LFW faces, plus the two loss equations on hand-made embeddings."""
import math

import pytest
import torch

from unlearn_core.errors import InvalidParameter
from unlearn_core.methods import Budget, create_method
from unlearn_core.methods.contrastive import contrastive_unlearning_loss


@pytest.mark.fast
def test_class_loss_is_eq6_and_sample_loss_is_eq5():
    forget = torch.tensor([[1.0, 0.0]])
    retain = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    tau = 0.5
    # Eq. 6, every retained image is a negative: -1/|N| sum_a (z.z_a / tau - log |N|)
    class_loss = contrastive_unlearning_loss(forget, torch.tensor([0]), retain, torch.tensor([1, 2, 3]), tau, "class")
    assert float(class_loss) == pytest.approx(-((1.0 + 0.0 + 0.6) / tau / 3 - math.log(3)), rel=1e-5)
    # Eq. 5, the first retained image shares the anchor's identity: denominator sum over positives
    sample_loss = contrastive_unlearning_loss(forget, torch.tensor([1]), retain, torch.tensor([1, 2, 3]), tau, "sample")
    assert float(sample_loss) == pytest.approx(-((0.0 + 0.6) / tau / 2 - 1.0 / tau), rel=1e-5)


def test_contrastive_at_its_defaults_forgets_forget_identities_and_keeps_retained(lfw_audit):
    # Shipped defaults (batch 64, 100 steps, Eq. 8 termination on the forget test images). Measured here:
    # forget head accuracy 1.00 -> 0.00, retained 1.00, retrieval mAP 0.93 / 1.00 (forget / retained).
    run = lfw_audit.run("contrastive")
    assert run.received.forget_test is not None  # S4 checks Eq. 8 on the forget test set
    lfw_audit.assert_forgets(run, "head_acc", drop=0.5)
    lfw_audit.assert_retains(run, tolerance=0.05, metrics=("mAP", "centroid_acc", "head_acc"))


def test_contrastive_stops_at_the_class_termination_condition(lfw_audit):
    ws = lfw_audit.ws
    method = create_method("contrastive", iterations=200, batch_size=32, check_every=2)
    method.unlearn(ws.original, ws.request(), Budget(), seed=0)
    assert method.n_iter_ < 200  # Eq. 8: forget accuracy <= 1/C reached long before the step limit


def test_contrastive_sample_mode_needs_shared_identities(lfw_audit):
    ws = lfw_audit.ws
    method = create_method("contrastive", mode="sample")
    assert "test" in method.data_needs()  # Eq. 9 compares with held-out images
    with pytest.raises(InvalidParameter, match="mode='class'"):
        method.unlearn(ws.original, ws.request(), Budget(iterations=1))


def test_contrastive_is_deterministic(lfw_audit):
    lfw_audit.assert_deterministic("contrastive", batch_size=16)
