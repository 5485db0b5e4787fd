"""The shared interface across all registered methods: the identity-head requirement is declared
honestly (a headless model is refused up front by exactly the methods that read the head)."""
import pytest

from unlearn_core.errors import InvalidParameter
from unlearn_core.methods import Budget, create_method, list_methods

PAPER_METHODS = {
    "dispersion", "hard_dispersion", "retrain", "finetune", "random_labeling", "salun", "gradient_ascent", "boundary_shrink",
    "lipschitz", "contrastive", "boundary_expanding", "meta_unlearn", "ssd", "jit", "pgu", "scrub", "bad_teacher",
    "weight_filtering", "weight_pruning", "cf_k", "unsir",
}


@pytest.mark.fast
def test_every_paper_method_is_registered():
    assert set(list_methods()) >= PAPER_METHODS


@pytest.mark.parametrize("name", list_methods())
def test_head_requirement_is_declared(lfw_workspace, name):
    headless = lfw_workspace.original.clone()
    headless.head = None
    method = create_method(name)
    request = lfw_workspace.request(one_shot="forget" not in method.data_needs())
    if method.needs_head():
        with pytest.raises(InvalidParameter, match="identity head"):
            method.unlearn(headless, request, Budget(iterations=1))
    else:  # it must really run without one
        assert method.unlearn(headless, request, Budget(iterations=1)).head is None
