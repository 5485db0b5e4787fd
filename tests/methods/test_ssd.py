"""SSD on real LFW faces: forgets in the classification sense (the identity head), not in retrieval."""
from unlearn_core.methods import create_method


def test_ssd_dampens_head_classification_of_forget_identities(lfw_audit):
    run = lfw_audit.run("ssd", retain_images=64)
    assert run.method.n_dampened_ > 0
    lfw_audit.assert_forgets(run, "head_acc", drop=0.4)
    assert run.after["retain"]["head_acc"] >= 0.75  # 0.83 with 64 retain images for the Fisher
    lfw_audit.assert_retains(run, tolerance=0.02)


def test_ssd_one_shot_uses_the_support_sample_only(lfw_audit):
    _method, _, received, _ = lfw_audit.unlearn("ssd", one_shot=True, retain_images=32)
    assert received.forget is None and len(received.support) == len(lfw_audit.ws.forget_classes)


def test_ssd_is_deterministic_and_validates(lfw_audit):
    lfw_audit.assert_deterministic("ssd", retain_images=32)
    lfw_audit.assert_rejects("ssd", alpha=-1.0)
    lfw_audit.assert_rejects("ssd", retain_images=0)
    assert create_method("ssd").data_needs() >= {"retain"}
