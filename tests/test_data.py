"""Galleries load through the standard loaders and the split protocol is identity-disjoint and seeded."""
import numpy as np
import pytest

from unlearn_core.data import load_folder, load_gallery, make_split
from unlearn_core.errors import DataUnavailable, InvalidParameter


@pytest.fixture(scope="module")
def lfw():
    return load_gallery("lfw", download_if_missing=False)


def test_lfw_from_sklearn_cache(lfw):
    assert len(lfw.identities) == 5749 and len(lfw) == 13233
    assert (lfw.counts() >= 20).sum() == 62


def test_split_is_identity_disjoint_and_seeded(lfw):
    a = make_split(lfw, 10, seed=0)
    b = make_split(lfw, 10, seed=0)
    c = make_split(lfw, 10, seed=1)
    assert np.array_equal(a.forget_ids, b.forget_ids) and not np.array_equal(a.forget_ids, c.forget_ids)
    assert not set(a.forget_ids) & set(a.retain_ids)
    labels = lfw.labels
    assert set(labels[a.forget_train]) == set(labels[a.forget_test]) == set(a.forget_ids)
    assert not set(labels[a.distractors]) & (set(a.forget_ids) | set(a.retain_ids))
    assert not set(a.forget_train) & set(a.forget_test)
    assert (lfw.counts()[a.forget_ids] >= 20).all() and (lfw.counts()[a.retain_ids] >= 10).all()


def test_split_rejects_bad_counts(lfw):
    with pytest.raises(InvalidParameter, match="n_forget must be between 1 and 61"):
        make_split(lfw, 100)
    with pytest.raises(InvalidParameter, match="unknown identities"):
        make_split(lfw, 1, forget_ids=["Nobody_Atall"])


def test_folder_gallery(att_folder):
    g = load_folder(att_folder)
    assert len(g.identities) == 40 and len(g) == 400


def test_missing_gallery_says_so(tmp_path):
    with pytest.raises(DataUnavailable, match="does not exist"):
        load_gallery(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(InvalidParameter, match="unknown dataset"):
        load_gallery("celeba")


def test_lfw_unavailable_offline_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    with pytest.raises(DataUnavailable, match="SCIKIT_LEARN_DATA"):
        load_gallery("lfw", download_if_missing=False)
