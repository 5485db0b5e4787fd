"""Bad Teacher on real LFW faces: competent/incompetent (randomly initialised) teacher distillation."""
from unlearn_core.methods import create_method


def test_bad_teacher_forgets_the_head_classification_at_its_defaults(lfw_audit):
    run = lfw_audit.run("bad_teacher")
    print(f"bad_teacher defaults: {run.summary()}")
    lfw_audit.assert_forgets(run, "head_acc", drop=0.3)
    assert run.after["retain"]["head_acc"] >= 0.7
    lfw_audit.assert_retains(run, tolerance=0.05)


def test_the_incompetent_teacher_is_a_reinitialised_network(lfw_audit):
    method = create_method("bad_teacher", iterations=1, batch_size=8)
    original = lfw_audit.ws.original
    method.unlearn(original, lfw_audit.ws.request(), seed=0)
    for (name, bad), (_, good) in zip(method._incompetent.named_trainable_parameters(), original.named_trainable_parameters()):
        if name.endswith("conv.weight") or name.endswith("fc.weight") or name == "head.weight":
            assert not bad.allclose(good), name


def test_bad_teacher_needs_retain_and_is_deterministic(lfw_audit):
    assert "retain" in create_method("bad_teacher").data_needs()
    lfw_audit.assert_deterministic("bad_teacher", iterations=2, batch_size=8)
    lfw_audit.assert_rejects("bad_teacher", forget_weight=-1)
