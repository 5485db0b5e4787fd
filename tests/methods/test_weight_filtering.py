"""Weight Filtering on real LFW faces: filter forget-specific weights, constrained fine-tuning."""
import torch

from unlearn_core.methods import create_method


def test_weight_filtering_zeroes_forget_specific_weights_and_keeps_them_constrained(lfw_audit):
    run = lfw_audit.run("weight_filtering")  # shipped defaults; measured here: forget head accuracy 1.00 -> 0.17
    method = run.method
    assert method.n_modified_ > 0
    params = dict(run.model.named_trainable_parameters())
    for name, (mask, value) in method._constrained.items():
        assert (params[name][mask] - value).abs().max() <= method.epsilon + 1e-6
        assert torch.equal(value, torch.zeros_like(value))  # fill="zero"
    lfw_audit.assert_forgets(run, "head_acc", drop=0.3)
    lfw_audit.assert_retains(run, tolerance=0.05)


def test_weight_filtering_is_deterministic_and_validates(lfw_audit):
    assert "retain" in create_method("weight_filtering").data_needs()
    lfw_audit.assert_deterministic("weight_filtering", iterations=1, batch_size=8, retain_images=16, fill="noise")
    lfw_audit.assert_rejects("weight_filtering", fill="gaussian")
    lfw_audit.assert_rejects("weight_filtering", percentile=101)
