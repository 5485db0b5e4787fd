"""The shared SalUn weight-saliency mask (any IterativeMethod's ``saliency``) and the ``salun`` method."""
import torch

from unlearn_core.methods import Budget, create_method
from unlearn_core.methods.base import cosface_loss
from unlearn_core.methods.saliency import saliency_mask


def changed_fraction(model, reference) -> float:
    return float(torch.cat([(p != q).flatten() for p, q in zip(model.trainable_parameters(), reference.trainable_parameters())]).float().mean())


def test_mask_keeps_the_weights_with_the_largest_forget_gradients(lfw_audit):
    ws = lfw_audit.ws
    data = ws.parts.forget_train
    mask = saliency_mask(ws.original, data, 0.3, cosface_loss)
    params = ws.original.trainable_parameters()
    assert [m.shape for m in mask] == [p.shape for p in params]
    kept = torch.cat([m.flatten() for m in mask]).float().mean()
    assert abs(float(kept) - 0.3) < 0.01
    grads = torch.autograd.grad(cosface_loss(ws.original, data.inputs, data.labels), params)
    magnitude = torch.cat([g.abs().flatten() for g in grads])
    flat = torch.cat([m.flatten() for m in mask])
    assert magnitude[flat].mean() > 5 * magnitude[~flat].mean()


def test_any_iterative_method_can_switch_the_mask_on(lfw_audit):
    ws = lfw_audit.ws
    model = create_method("gradient_ascent", saliency=0.2).unlearn(ws.original, ws.request(), Budget(iterations=2), seed=0)
    assert 0.1 < changed_fraction(model, ws.original) <= 0.2 + 1e-3


def test_salun_at_its_defaults_forgets_forget_identities_and_keeps_retained(lfw_audit):
    run = lfw_audit.run("salun")  # shipped defaults: random labeling's 250 steps on 50 % of the weights
    assert changed_fraction(run.model, lfw_audit.ws.original) <= 0.5 + 1e-3
    lfw_audit.assert_forgets(run, "head_acc", drop=0.5)
    lfw_audit.assert_retains(run, tolerance=0.05)


def test_salun_is_deterministic(lfw_audit):
    lfw_audit.assert_deterministic("salun", batch_size=8)
