"""JiT on real LFW faces: data-free Lipschitz smoothing around the forget images."""
import torch

from unlearn_core.methods.lipschitz import lipschitz_loss


def lipschitz_ratio(model, x) -> float:
    with torch.no_grad():
        return float(lipschitz_loss(model, x, 10, 0.1, torch.Generator().manual_seed(0)))


def test_jit_at_its_defaults_smooths_the_support_images_and_forgets_nothing_else(lfw_audit):
    """One pass over the support sample (one step here): the model is smoother around those photos,
    and, as on the validation split at every point of JiT's range (docs/tuning-lfw.md), the head
    still names the people and retrieval finds them: JiT does not forget here."""
    ws = lfw_audit.ws
    run = lfw_audit.run("jit", one_shot=True)
    assert run.received.retain is None and run.received.test is None and run.received.forget is None
    assert run.method.n_iter_ == 1  # ceil(4 support photos / batches of 8)
    support = run.received.support.inputs
    assert lipschitz_ratio(run.model, support) < lipschitz_ratio(ws.original, support)
    lfw_audit.assert_close(run, "forget", "head_acc", 0.05)
    lfw_audit.assert_close(run, "forget", "mAP", 0.02)
    lfw_audit.assert_retains(run, tolerance=0.02)


def test_jit_never_declares_retain_and_is_deterministic(lfw_audit):
    from unlearn_core.methods import create_method

    assert "retain" not in create_method("jit").data_needs()
    lfw_audit.assert_deterministic("jit", iterations=1, one_shot=True, n_samples=4)
    lfw_audit.assert_rejects("jit", n_samples=0)
