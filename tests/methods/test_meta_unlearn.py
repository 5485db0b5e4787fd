"""MetaUnlearn on real LFW faces: meta-trained on simulated requests of retained identities,
then one step from one support image per forget identity."""
import pytest
import torch

from unlearn_core.methods import create_method
from unlearn_core.methods.meta_unlearn import MetaLoss


@pytest.mark.fast
def test_meta_loss_architecture_is_table_8():
    meta = MetaLoss(n_classes=6, feature_dim=16, hidden=32)
    kinds = [type(m).__name__ for m in meta.net]
    assert kinds == ["Linear", "LayerNorm", "Linear", "GELU", "Dropout", "LayerNorm", "Linear", "Softplus"]
    assert meta.net[0].in_features == 6 + 16 + 64 + 6 and meta.net[4].p == 0.5
    g = torch.Generator().manual_seed(0)
    value = meta(torch.randn(3, 6, generator=g), torch.randn(3, 16, generator=g), torch.tensor([0, 2, 5]))
    assert value.ndim == 0 and float(value) > 0


def test_meta_unlearn_simulates_retained_identities_only_and_unlearns_in_one_step(lfw_audit):
    ws = lfw_audit.ws
    run = lfw_audit.run("meta_unlearn", one_shot=True)  # the shipped (tuned) defaults
    method = run.method
    assert run.received.forget is None and len(run.received.support) == len(ws.forget_classes)
    simulated = {c for request in method.simulated_identities_ for c in request}
    assert len(method.simulated_identities_) == method.meta_iterations
    assert all(len(r) == len(ws.forget_classes) for r in method.simulated_identities_)
    assert simulated and not simulated & set(ws.forget_classes)  # never the real forget identities
    assert all(torch.isfinite(torch.tensor(method.aux_history_)))
    changed = [n for (n, p), (_, q) in zip(run.model.named_trainable_parameters(), ws.original.named_trainable_parameters())
               if not torch.equal(p, q)]
    assert changed  # the one step moved the model
    # forgetting in S2's membership / classification sense, not retrieval (docs/tuning-lfw.md)
    lfw_audit.assert_forgets(run, "head_acc", drop=0.3)
    lfw_audit.assert_retains(run, tolerance=0.05, metrics=("mAP",))
    lfw_audit.assert_close(run, "forget", "mAP", 0.1)


def test_meta_unlearn_is_deterministic_and_validates(lfw_audit):
    assert create_method("meta_unlearn").data_needs() == {"support", "retain", "test"}
    lfw_audit.assert_deterministic("meta_unlearn", iterations=1, one_shot=True, hidden=32, forget_images=2, validation_images=8)
    lfw_audit.assert_rejects("meta_unlearn", meta_lr=0.0)
