"""Bad Teacher on real LFW faces: competent/incompetent teacher distillation."""
from unlearn_core.methods import create_method


def test_bad_teacher_forgets_the_head_classification_and_keeps_retain(lfw_audit):
    run = lfw_audit.run("bad_teacher", iterations=8, batch_size=16)
    lfw_audit.assert_forgets(run, "head_acc", drop=0.3)
    assert run.after["retain"]["head_acc"] >= 0.7  # 0.76 after these 8 steps, 0.98 after the default 40
    lfw_audit.assert_retains(run, tolerance=0.02)


def test_bad_teacher_needs_retain_and_is_deterministic(lfw_audit):
    assert "retain" in create_method("bad_teacher").data_needs()
    lfw_audit.assert_deterministic("bad_teacher", iterations=2, batch_size=8)
    lfw_audit.assert_rejects("bad_teacher", forget_weight=-1)
