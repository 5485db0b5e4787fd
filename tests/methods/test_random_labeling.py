"""random_labeling (S0 Eq. 7) on real LFW faces."""
import pytest


@pytest.fixture(scope="module")
def default_run(lfw_audit):
    """The shipped defaults (S0: 250 steps, lambda_retain 1, lr 1e-4, batch 32; ~20 s here)."""
    return lfw_audit.run("random_labeling")


def test_random_labeling_at_its_defaults_forgets_forget_identities_and_keeps_retained(lfw_audit, default_run):
    run = default_run
    assert run.received.retain is not None  # lambda_retain = 1: Eq. 7's retain term
    lfw_audit.assert_forgets(run, "head_acc", drop=0.5)
    lfw_audit.assert_retains(run, tolerance=0.05)


def test_random_labeling_without_retain_term_is_data_free(lfw_audit):
    method, _, received, _ = lfw_audit.unlearn("random_labeling", iterations=1, batch_size=8, lambda_retain=0.0)
    assert "retain" not in method.data_needs() and received.retain is None


def test_random_labeling_is_deterministic(lfw_audit):
    lfw_audit.assert_deterministic("random_labeling", batch_size=8)


def test_fixed_centroids_see_what_own_centroids_cannot(default_run):
    """Random labeling moves a person's photos together: nearest-centroid accuracy against the
    model's own centroids stays high, against the original model's centroids (S0's reading, whose
    RL row is 0.00) it falls."""
    run = default_run
    forget = run.after["forget"]
    assert run.before["forget"]["original_centroid_acc"] == run.before["forget"]["centroid_acc"]  # the original model: one and the same
    assert forget["original_centroid_acc"] < run.before["forget"]["original_centroid_acc"] - 0.5
    assert forget["centroid_acc"] > forget["original_centroid_acc"] + 0.3
