"""JiT on real LFW faces: data-free Lipschitz smoothing around the forget images."""
import torch

from unlearn_core.methods.lipschitz import lipschitz_loss


def lipschitz_ratio(model, x) -> float:
    with torch.no_grad():
        return float(lipschitz_loss(model, x, 10, 0.1, torch.Generator().manual_seed(0)))


def test_jit_smooths_the_forget_images_without_retain_data(lfw_audit):
    ws = lfw_audit.ws
    run = lfw_audit.run("jit", one_shot=True, iterations=4)
    assert run.received.retain is None and run.received.test is None and run.received.forget is None
    support = run.received.support.inputs
    assert lipschitz_ratio(run.model, support) < lipschitz_ratio(ws.original, support)
    lfw_audit.assert_retains(run, tolerance=0.02)


def test_jit_never_declares_retain_and_is_deterministic(lfw_audit):
    from unlearn_core.methods import create_method

    assert "retain" not in create_method("jit").data_needs()
    lfw_audit.assert_deterministic("jit", iterations=1, one_shot=True, n_samples=4)
    lfw_audit.assert_rejects("jit", n_samples=0)
