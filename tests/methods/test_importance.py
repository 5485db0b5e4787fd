"""The shared parameter-importance helper on real LFW faces."""
import torch

from unlearn_core.methods.importance import forget_specific, parameter_importance


def test_importance_covers_every_trainable_parameter_and_is_consistent(lfw_workspace):
    ws = lfw_workspace
    model = ws.original
    imp = parameter_importance(model, ws.parts.forget_train, batch_size=16, max_images=24, generator=torch.Generator().manual_seed(0))
    names = [n for n, _ in model.named_trainable_parameters()]
    assert list(imp.fisher) == names and list(imp.grad_abs) == names
    for n in names:
        assert (imp.fisher[n] >= 0).all() and (imp.grad_abs[n] >= 0).all()
        # mean of squares >= square of means (Jensen): Fisher >= |g|^2 element-wise
        assert (imp.fisher[n] + 1e-12 >= imp.grad_abs[n].pow(2) * (1 - 1e-4)).all()
    assert all(p.grad is None for p in model.trainable_parameters())


def test_forget_rows_of_the_head_are_forget_specific(lfw_workspace):
    """The forget identities' head rows matter to forget images far more than to retain images."""
    ws = lfw_workspace
    g = torch.Generator().manual_seed(0)
    forget = parameter_importance(ws.original, ws.parts.forget_train, max_images=24, generator=g).fisher
    retain = parameter_importance(ws.original, ws.parts.retain_train, max_images=48, generator=g).fisher
    head = forget_specific(forget, retain, ratio=10.0)["head.weight"]
    rows = head.float().mean(1)
    forget_rows = rows[ws.forget_classes].mean()
    retain_rows = rows[len(ws.forget_classes):].mean()
    assert forget_rows > retain_rows
