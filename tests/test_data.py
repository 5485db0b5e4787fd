"""Galleries load through the standard loaders and the split protocol is identity-disjoint and seeded."""
import numpy as np
import pytest

from unlearn_core.data import Gallery, load_folder, load_gallery, make_split
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
    with pytest.raises(InvalidParameter, match=r"lfw has 62 people with at least 20 photos each; forgetting 100 needs 101.*Forget at most 61"):
        make_split(lfw, 100)
    with pytest.raises(InvalidParameter, match="unknown identities"):
        make_split(lfw, 1, forget_ids=["Nobody_Atall"])


def test_folder_gallery(att_folder):
    g = load_folder(att_folder)
    assert len(g.identities) == 40 and len(g) == 400


@pytest.mark.fast
def test_missing_gallery_says_so(tmp_path):
    with pytest.raises(DataUnavailable, match="does not exist"):
        load_gallery(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(InvalidParameter, match="unknown dataset"):
        load_gallery("celeba")


@pytest.mark.fast
def test_lfw_unavailable_offline_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    with pytest.raises(DataUnavailable, match="SCIKIT_LEARN_DATA"):
        load_gallery("lfw", download_if_missing=False)


def few_photos_gallery() -> Gallery:
    """12 people with 4, 5 or 6 photos each (paths only: splitting reads no image)."""
    labels = np.repeat(np.arange(12), [4, 5, 6] * 4)
    return Gallery("folder:few", [f"photo{i}.jpg" for i in range(len(labels))], labels, [f"person{i}" for i in range(12)])


@pytest.mark.fast
def test_min_images_defaults_to_the_protocol_minimum_for_folders():
    split = make_split(few_photos_gallery(), 3)
    assert len(split.forget_ids) == 3 and len(split.retain_ids) == 9
    labels = few_photos_gallery().labels
    assert (np.unique(labels[split.forget_test], return_counts=True)[1] == 2).all()  # 2 test photos each, the rest to train
    assert set(labels[split.forget_train]) == set(split.forget_ids)


def test_min_images_option_and_plain_errors(lfw):
    gallery = few_photos_gallery()
    split = make_split(gallery, 2, min_images=6)  # 4 people have 6 photos: 2 forgotten, 2 retained
    assert (gallery.counts()[np.concatenate([split.forget_ids, split.retain_ids])] == 6).all() and len(split.retain_ids) == 2
    with pytest.raises(InvalidParameter, match=r"folder:few has 0 people with at least 7 photos each; forgetting 3 needs 4 .*--min-images"):
        make_split(gallery, 3, min_images=7)
    with pytest.raises(InvalidParameter, match=r"forgetting 12 needs 13.*Forget at most 11.*add them or their photos"):
        make_split(gallery, 12)
    with pytest.raises(InvalidParameter, match=r"at least 4 .2 to train on, 2 to test., got 3"):
        make_split(gallery, 3, min_images=3)
    wider = make_split(lfw, 10, min_images=4)  # LFW keeps 20 / 10 unless asked
    assert (lfw.counts()[wider.retain_ids] >= 4).all() and (lfw.counts()[wider.retain_ids] < 10).any()


@pytest.mark.fast
def test_folder_galleries_with_the_same_shape_have_different_cache_keys(tmp_path):
    """Two zips (both named 'zip') or two folders of the same name must not share cached models."""
    from unlearn_core.data import load_folder

    keys = []
    for variant in (0, 1):
        root = tmp_path / str(variant) / "gallery"
        for person in ("a", "b"):
            (root / person).mkdir(parents=True)
            (root / person / "1.png").write_bytes(bytes([variant, ord(person)]) * 10)
        keys.append(load_folder(root, name="zip").content_key())
    assert keys[0] != keys[1] and all(k.startswith("zip:") for k in keys)
    assert load_folder(tmp_path / "0" / "gallery", name="zip").content_key() == keys[0]
