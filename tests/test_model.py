"""FaceModel: copies never touch the original; ``split`` runs the frozen blocks once, exactly."""
import pytest
import torch

from unlearn_core.model import FaceModel


def test_split_composes_to_the_whole_model(lfw_workspace):
    model = lfw_workspace.original.clone()
    x = lfw_workspace.parts.forget_test.inputs[:8]
    for n in range(1, len(model.trainable_blocks()) + 1):
        prefix, suffix = model.split(n)
        assert isinstance(suffix, FaceModel) and suffix.head is model.head
        torch.testing.assert_close(suffix(prefix(x)), model(x), rtol=1e-5, atol=1e-5)
        assert not prefix(x).requires_grad


def test_training_the_suffix_trains_the_model_it_came_from(lfw_workspace):
    model = lfw_workspace.original.clone()
    before = [p.detach().clone() for p in model.trainable_parameters()]
    prefix, suffix = model.split(2)
    x = prefix(lfw_workspace.parts.forget_test.inputs[:8])
    suffix(x).pow(2).sum().backward()
    with torch.no_grad():
        for p in suffix.trainable_parameters():
            if p.grad is not None:
                p -= 1e-2 * p.grad
    changed = [not torch.equal(a, b) for a, b in zip(before, model.trainable_parameters())]
    n_suffix = sum(1 for block in model.trainable_blocks()[-2:] for _ in block.parameters())
    n_early = len(changed) - n_suffix - len(list(model.head.parameters()))
    assert not any(changed[:n_early]), "blocks outside the suffix must not move"
    assert any(changed[n_early : n_early + n_suffix])
    assert all(torch.equal(a, b) for a, b in zip(before, lfw_workspace.original.trainable_parameters()))


def test_split_rejects_bad_sizes(lfw_workspace):
    model = lfw_workspace.original
    with pytest.raises(ValueError, match="n_blocks"):
        model.split(0)
    with pytest.raises(ValueError, match="n_blocks"):
        model.split(len(model.trainable_blocks()) + 1)
