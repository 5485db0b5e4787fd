"""Budget semantics: every method says what ``Budget.iterations`` counts, or that it takes none."""
import pytest
import torch

from unlearn_core.methods import Budget, list_methods, method_class


@pytest.mark.fast
def test_every_method_states_what_its_budget_counts():
    for name in list_methods():
        counts = method_class(name).budget_counts
        assert counts is None or (isinstance(counts, str) and counts), name
    assert method_class("projection").budget_counts is None and method_class("ssd").budget_counts is None
    assert "steps" in method_class("dispersion").budget_counts and "meta-iterations" in method_class("meta_unlearn").budget_counts


@pytest.mark.parametrize("name", [n for n in list_methods() if method_class(n).budget_counts is None])
def test_a_closed_form_method_ignores_the_budget(name, olivetti_workspace):
    model, request = olivetti_workspace.original, olivetti_workspace.request()
    method = method_class(name)()
    free = method.unlearn(model, request, Budget(), seed=0)
    capped = method.unlearn(model, request, Budget(iterations=1, seconds=1e-9), seed=0)
    for a, b in zip(free.trainable_parameters(), capped.trainable_parameters()):
        assert torch.equal(a, b), name
