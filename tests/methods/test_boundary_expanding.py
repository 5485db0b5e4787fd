"""boundary_expanding (Chen et al. 2023): shadow class trained on forget images, then pruned."""


def test_boundary_expanding_at_its_defaults_forgets_the_head_but_not_selectively(lfw_audit):
    # Shipped defaults (lr 1e-5, 100 steps). Measured here: forget head accuracy 1.00 -> 0.83, retained
    # 1.00 -> 0.78, compactness ~0.98 for every identity (all embeddings pulled towards the shadow
    # direction), retrieval mAP and centroid accuracy unchanged; `make bench` (10 forget / 40 retained,
    # 3 seeds): forget head 100 -> 42 %, retained 100 -> 50 %. It forgets in the classification sense
    # only as much as it breaks the head for everyone (see the module docstring).
    run = lfw_audit.run("boundary_expanding")
    assert run.received.retain is None
    assert run.model.head.weight.shape == lfw_audit.ws.original.head.weight.shape  # the shadow row is pruned
    lfw_audit.assert_forgets(run, "head_acc", drop=0.1)
    lfw_audit.assert_forgets(run, "head_acc", drop=0.1, part="retain")  # the measured cost, not selective
    assert min(run.after["forget"]["cs"], run.after["retain"]["cs"]) > 0.9
    lfw_audit.assert_retains(run, tolerance=0.05)


def test_boundary_expanding_is_deterministic(lfw_audit):
    lfw_audit.assert_deterministic("boundary_expanding")
