"""boundary_expanding (Chen et al. 2023): shadow class trained on forget images, then pruned."""

STEPS = 10


def test_boundary_expanding_forgets_and_prunes_the_shadow_class(lfw_audit):
    run = lfw_audit.run("boundary_expanding", iterations=STEPS, lr=3e-5)
    assert run.received.retain is None
    assert run.model.head.weight.shape == lfw_audit.ws.original.head.weight.shape
    lfw_audit.assert_forgets(run, "head_acc", drop=0.5)
    lfw_audit.assert_retains(run, tolerance=0.05)


def test_boundary_expanding_is_deterministic(lfw_audit):
    lfw_audit.assert_deterministic("boundary_expanding")
