"""Bad Teacher on real LFW faces: competent/incompetent teacher distillation."""
from unlearn_core.methods import create_method
from unlearn_core.methods.base import head_accuracy


def test_bad_teacher_forgets_the_head_classification_and_keeps_retain(lfw_audit):
    ws = lfw_audit.ws
    run = lfw_audit.run("bad_teacher", iterations=8, batch_size=16)
    assert head_accuracy(run.model, ws.data["forget_test"]) <= head_accuracy(ws.original, ws.data["forget_test"]) - 0.3, run.summary()
    assert head_accuracy(run.model, ws.data["retain_test"]) >= 0.9
    lfw_audit.assert_retains(run, tolerance=0.02)


def test_bad_teacher_needs_retain_and_is_deterministic(lfw_audit):
    assert "retain" in create_method("bad_teacher").data_needs()
    lfw_audit.assert_deterministic("bad_teacher", iterations=2, batch_size=8)
    lfw_audit.assert_rejects("bad_teacher", forget_weight=-1)
