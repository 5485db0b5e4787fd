"""SCRUB on real LFW faces: teacher-student min-max with the full retain data."""
import torch

from unlearn_core.methods import create_method
from unlearn_core.methods.distill import kl_to_teacher


def test_scrub_at_its_defaults_forgets_in_the_classification_sense(lfw_audit):
    """The tuned defaults (docs/tuning-lfw.md): the head stops naming the forget identities;
    retrieval of the retained ones holds, their head accuracy pays (0.63 on the validation split)."""
    ws = lfw_audit.ws
    run = lfw_audit.run("scrub")
    lfw_audit.assert_forgets(run, "head_acc", drop=0.5)
    lfw_audit.assert_retains(run, tolerance=0.05, metrics=("mAP",))

    def divergence(part: str) -> float:
        x = ws.parts[part].inputs
        with torch.no_grad():
            return float(kl_to_teacher(run.model.logits(x), ws.original.logits(x), run.method.temperature))

    assert divergence("forget_train") > 2 * divergence("retain_train"), run.summary()


def test_scrub_needs_retain_and_is_deterministic(lfw_audit):
    assert "retain" in create_method("scrub").data_needs()
    lfw_audit.assert_deterministic("scrub", iterations=2, max_steps=1, batch_size=8)
    lfw_audit.assert_rejects("scrub", temperature=0.0)
