"""SSD on real LFW faces: forgets in the classification sense (the identity head), not in retrieval."""
from unlearn_core.methods import create_method


def test_ssd_at_its_defaults_dampens_head_classification_of_forget_identities(lfw_audit):
    # Shipped defaults (alpha 10, lambda 1, 256 retain images). Measured here: forget head accuracy
    # 1.00 -> 0.25, retained 0.99, retrieval unchanged (mAP 1.00 / 0.999).
    run = lfw_audit.run("ssd")
    assert run.method.n_dampened_ > 0
    lfw_audit.assert_forgets(run, "head_acc", drop=0.4)
    assert run.after["retain"]["head_acc"] >= 0.9
    lfw_audit.assert_retains(run, tolerance=0.02)


def test_ssd_one_shot_forgets_from_the_support_sample(lfw_audit):
    # S2 runs SSD on the support sample (one photo per person). Measured here at the defaults: forget
    # head accuracy 1.00 -> 0.38, retained 0.97, retrieval unchanged (`make bench`: cls 100 -> 69 %).
    run = lfw_audit.run("ssd", one_shot=True)
    assert run.received.forget is None and len(run.received.support) == len(lfw_audit.ws.forget_classes)
    lfw_audit.assert_forgets(run, "head_acc", drop=0.4)
    assert run.after["retain"]["head_acc"] >= 0.9
    lfw_audit.assert_retains(run, tolerance=0.02)


def test_ssd_is_deterministic_and_validates(lfw_audit):
    lfw_audit.assert_deterministic("ssd", retain_images=32)
    lfw_audit.assert_rejects("ssd", alpha=-1.0)
    lfw_audit.assert_rejects("ssd", retain_images=0)
    assert create_method("ssd").data_needs() >= {"retain"}
