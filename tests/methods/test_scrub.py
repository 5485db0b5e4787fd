"""SCRUB on real LFW faces: teacher-student min-max with the full retain data."""
from unlearn_core.methods import create_method
from unlearn_core.methods.base import head_accuracy


def test_scrub_forgets_the_head_classification_and_keeps_retain(lfw_audit):
    ws = lfw_audit.ws
    run = lfw_audit.run("scrub", iterations=8, max_steps=3, batch_size=16)
    assert head_accuracy(run.model, ws.data["forget_test"]) <= head_accuracy(ws.original, ws.data["forget_test"]) - 0.3, run.summary()
    assert head_accuracy(run.model, ws.data["retain_test"]) >= 0.8
    lfw_audit.assert_retains(run, tolerance=0.05)


def test_scrub_needs_retain_and_is_deterministic(lfw_audit):
    assert "retain" in create_method("scrub").data_needs()
    lfw_audit.assert_deterministic("scrub", iterations=2, max_steps=1, batch_size=8)
    lfw_audit.assert_rejects("scrub", temperature=0.0)
