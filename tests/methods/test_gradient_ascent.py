"""gradient_ascent (S0 Eq. 8) on real LFW faces: data-free, forgets in the classification sense."""


def test_gradient_ascent_at_its_defaults_forgets_forget_identities_without_retain_data(lfw_audit):
    # Shipped defaults (S0: lr 1e-5, 50 steps). Measured here: forget head accuracy 1.00 -> 0.00, and the
    # retained identities' 1.00 -> 0.03 too: the head breaks for everyone (see the module docstring),
    # while retrieval mAP (0.998 -> 0.977) and centroid accuracy hold.
    run = lfw_audit.run("gradient_ascent")
    assert run.received.retain is None and run.received.test is None
    lfw_audit.assert_forgets(run, "head_acc", drop=0.5)
    lfw_audit.assert_forgets(run, "head_acc", drop=0.5, part="retain")
    lfw_audit.assert_retains(run, tolerance=0.05, metrics=("mAP", "centroid_acc"))


def test_gradient_ascent_is_deterministic(lfw_audit):
    lfw_audit.assert_deterministic("gradient_ascent")
