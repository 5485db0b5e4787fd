"""gradient_ascent (S0 Eq. 8) on real LFW faces: data-free, forgets in the classification sense."""

STEPS = 10


def test_gradient_ascent_forgets_forget_identities_without_retain_data(lfw_audit):
    run = lfw_audit.run("gradient_ascent", iterations=STEPS)
    assert run.received.retain is None and run.received.test is None
    lfw_audit.assert_forgets(run, "head_acc", drop=0.5)
    lfw_audit.assert_retains(run, tolerance=0.05, metrics=("mAP", "centroid_acc"))


def test_gradient_ascent_is_deterministic(lfw_audit):
    lfw_audit.assert_deterministic("gradient_ascent")
