"""SCRUB on real LFW faces: teacher-student min-max with the full retain data."""
import torch

from unlearn_core.methods import create_method
from unlearn_core.methods.distill import kl_to_teacher


def test_scrub_diverges_from_the_teacher_on_forget_images_only(lfw_audit):
    ws = lfw_audit.ws
    run = lfw_audit.run("scrub", iterations=8, max_steps=4, batch_size=16, lr=1e-3)

    def divergence(part: str) -> float:
        x = ws.parts[part].inputs
        with torch.no_grad():
            return float(kl_to_teacher(run.model.logits(x), ws.original.logits(x), run.method.temperature))

    assert divergence("forget_train") > 2 * divergence("retain_train"), run.summary()
    lfw_audit.assert_retains(run, tolerance=0.05)


def test_scrub_needs_retain_and_is_deterministic(lfw_audit):
    assert "retain" in create_method("scrub").data_needs()
    lfw_audit.assert_deterministic("scrub", iterations=2, max_steps=1, batch_size=8)
    lfw_audit.assert_rejects("scrub", temperature=0.0)
