"""The find step of gallery-assisted forgetting: calibrated thresholds and what they find."""
import numpy as np
import pytest

from unlearn_core.errors import InvalidParameter
from unlearn_core.find import Finder, FindOutcome, calibrate, find_matches, outcome


def clusters(n_ids: int, per_id: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, 32))
    labels = np.repeat(np.arange(n_ids), per_id)
    return centres[labels] + spread * rng.normal(size=(len(labels), 32)), labels


@pytest.mark.fast
def test_threshold_meets_its_false_match_target_and_says_what_it_can_resolve():
    queries, q_labels = clusters(20, 3, 0.8, 0)
    candidates, c_labels = clusters(20, 10, 0.8, 0)
    threshold = calibrate(queries, q_labels, candidates, c_labels, target_fmr=1e-2)
    assert threshold.fmr <= 1e-2
    assert threshold.n_impostor == 60 * 190 and threshold.n_genuine == 60 * 10
    assert threshold.resolvable_fmr == pytest.approx(1 / (60 * 190))
    assert 0 <= threshold.fnmr < 0.5
    with pytest.raises(InvalidParameter):
        calibrate(queries, q_labels, candidates, c_labels, target_fmr=0)


@pytest.mark.fast
def test_a_photo_is_never_paired_with_itself():
    x, labels = clusters(5, 4, 0.5, 2)
    with_self = calibrate(x, labels, x, labels, 0.01)
    without = calibrate(x, labels, x, labels, 0.01, np.arange(len(x)), np.arange(len(x)))
    assert with_self.n_genuine == without.n_genuine + len(x)


@pytest.mark.fast
def test_find_matches_is_ordered_and_thresholded():
    candidates = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.9, 0.1]])
    found, scores = find_matches(np.array([1.0, 0.0]), candidates, 0.5)
    assert found.tolist() == [0, 3, 1] and np.all(np.diff(scores) <= 0)
    assert len(find_matches(np.array([1.0, 0.0]), candidates[:0], 0.5)[0]) == 0


@pytest.mark.fast
def test_outcome_precision_and_recall():
    labels = np.array([1, 1, 1, 2, 2])
    o = outcome(np.array([0, 1, 3]), labels, 1)
    assert (o.n_found, o.n_true_found, o.n_present) == (3, 2, 3)
    assert o.precision == pytest.approx(2 / 3) and o.recall == pytest.approx(2 / 3)
    assert FindOutcome.total([o, outcome(np.array([3, 4]), labels, 2)]).recall == pytest.approx(4 / 5)
    assert outcome(np.array([], dtype=int), labels, 1).precision == 1.0  # nothing taken, nothing wrong


@pytest.mark.fast
def test_the_second_pass_and_identity_templates_find_more_than_one_photo_alone():
    queries, q_labels = clusters(30, 3, 1.2, 1)
    candidates, c_labels = clusters(30, 12, 1.2, 1)
    templates = np.stack([candidates[c_labels == c].mean(0) for c in range(30)])
    finder = Finder.calibrate(queries, q_labels, np.arange(len(queries)), templates, np.arange(30), candidates, c_labels,
                              1000 + np.arange(len(candidates)), false_per_search=0.5)
    assert finder.first.target_fmr == pytest.approx(0.5 / len(candidates))
    assert finder.identity.target_fmr == pytest.approx(0.5 / 30)
    first = sum(outcome(find_matches(q, candidates, finder.first.threshold)[0], c_labels, l).n_true_found for q, l in zip(queries, q_labels))
    both = sum(outcome(finder.find(q, candidates), c_labels, l).n_true_found for q, l in zip(queries, q_labels))
    assert both > first
    matched = [finder.find_identities(q, templates) for q in queries]
    by_identity = np.mean([label in m for label, m in zip(q_labels, matched)])
    assert by_identity > first / (12 * len(queries))  # a template finds the person more often than photo by photo


def test_gallery_assisted_find_never_takes_another_persons_photo_on_lfw(lfw_workspace):
    """A held-out selfie of each forget identity, at the threshold calibrated on retained people."""
    request, find = lfw_workspace.gallery_assisted_request(seed=0)
    total = find.total
    assert total.n_found > 0 and total.precision == 1.0
    assert total.recall >= 0.9
    for threshold in (find.finder.identity, find.finder.first, find.finder.expanded):
        assert threshold.fmr <= threshold.target_fmr
        assert threshold.resolvable_fmr <= threshold.target_fmr  # the sample can show the rate it claims
    assert set(np.unique(request.forget.labels.numpy())) == set(lfw_workspace.forget_classes)
    assert not np.isin(find.selfie_ids, lfw_workspace.parts.forget_train.image_ids).any()  # selfies are held-out photos
