"""The gallery index: exact search equals a dense cosine ranking on real faces; deletes, persistence, IVF."""
import numpy as np
import pytest

from unlearn_core.errors import InvalidParameter
from unlearn_core.features import GALLERY_PARTS
from unlearn_core.index import EXACT_BELOW, GalleryIndex, IVFParams
from unlearn_core.metrics import index_retrieval, retrieval, unit_rows


def gallery_of(ws) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The workspace's search gallery under its original model: ids, vectors, labels."""
    ids = np.concatenate([ws.parts[p].image_ids for p in GALLERY_PARTS])
    vectors = np.concatenate([ws.embed(ws.original, p) for p in GALLERY_PARTS])
    labels = np.concatenate([ws.parts[p].labels.cpu().numpy() for p in GALLERY_PARTS])
    return ids, vectors, labels


def dense_top_k(queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = unit_rows(queries) @ unit_rows(vectors).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, 1), ids[order]


def test_exact_search_is_the_dense_cosine_ranking_on_lfw(lfw_workspace):
    ids, vectors, labels = gallery_of(lfw_workspace)
    queries = lfw_workspace.embed(lfw_workspace.original, "forget_train")
    index = GalleryIndex.build(ids, vectors, labels)
    assert index.kind == "exact" and index.count == len(ids)
    scores, found = index.search(queries, 10)
    want_scores, want_ids = dense_top_k(queries, vectors, ids, 11)
    np.testing.assert_allclose(scores, want_scores[:, :10], atol=1e-5)
    distinct = np.diff(want_scores, axis=1)[:, :10] < -1e-5  # rank r is well separated from rank r + 1
    assert distinct.mean() > 0.99
    assert np.array_equal(found[distinct], want_ids[:, :10][distinct])
    label_of = dict(zip(ids.tolist(), labels.tolist()))
    np.testing.assert_array_equal(index.labels_of(found), np.vectorize(label_of.get)(found))


def test_retrieval_metrics_through_the_index_equal_the_dense_ones_on_lfw(lfw_workspace):
    ids, vectors, labels = gallery_of(lfw_workspace)
    test = lfw_workspace.parts.forget_test
    queries, q_labels = lfw_workspace.embed(lfw_workspace.original, "forget_test"), test.labels.cpu().numpy()
    dense = retrieval(queries, q_labels, vectors, labels, test.image_ids, ids)
    indexed = index_retrieval(GalleryIndex.build(ids, vectors, labels), queries, q_labels, test.image_ids)
    assert indexed["n_queries"] == dense["n_queries"] == len(queries)
    for metric in ("mAP", "rank1", "rank5"):
        assert indexed[metric] == pytest.approx(dense[metric], abs=1e-4)


def test_deleting_a_person_removes_exactly_their_rows_and_persists(lfw_workspace, tmp_path):
    ids, vectors, labels = gallery_of(lfw_workspace)
    person = lfw_workspace.forget_classes[0]
    queries = lfw_workspace.embed(lfw_workspace.original, "forget_train")[lfw_workspace.parts.forget_train.labels.cpu().numpy() == person]
    index = GalleryIndex.build(ids, vectors, labels)
    _, before = index.search(queries, 5)
    assert (index.labels_of(before) == person).mean() > 0.9  # the person's training photos find their gallery photos
    n_person = int((labels == person).sum())
    assert index.delete(label=person) == n_person and index.count == len(ids) - n_person
    _, after = index.search(queries, 20)
    assert not np.isin(after, ids[labels == person]).any()
    assert len(index.ids_of(person)) == 0 and index.delete(label=person) == 0
    loaded = GalleryIndex.load(index.save(tmp_path / "gallery"))
    assert loaded.count == index.count and loaded.kind == index.kind
    np.testing.assert_array_equal(loaded.search(queries, 20)[1], after)
    np.testing.assert_array_equal(loaded.labels_of(after), index.labels_of(after))


def test_ivf_is_exact_with_every_cell_probed_and_approximate_with_one(lfw_workspace, tmp_path):
    ids, vectors, labels = gallery_of(lfw_workspace)
    queries = lfw_workspace.embed(lfw_workspace.original, "retain_train")
    exact = GalleryIndex.build(ids, vectors, labels).search(queries, 10)[1]
    full = GalleryIndex.build(ids, vectors, labels, exact_below=0, ivf=IVFParams(nlist=4, nprobe=4))
    assert full.kind == "ivf4,nprobe4"
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(full.search(queries, 10)[1], exact)])
    assert recall > 0.999
    one = GalleryIndex.build(ids, vectors, labels, exact_below=0, ivf=IVFParams(nlist=4, nprobe=1))
    one_recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(one.search(queries, 10)[1], exact)])
    assert one_recall < recall
    loaded = GalleryIndex.load(one.save(tmp_path / "ivf"))
    assert loaded.kind == one.kind
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], one.search(queries, 10)[1])
    person = int(labels[0])
    one.delete(label=person)
    assert not np.isin(one.search(queries, 10)[1], ids[labels == person]).any()


@pytest.mark.fast
def test_add_delete_and_padding_rules():
    rng = np.random.default_rng(0)
    index = GalleryIndex(16)
    index.add(np.array([5, 3, 9]), rng.normal(size=(3, 16)), np.array([1, 1, 2]))
    with pytest.raises(InvalidParameter):
        index.add(np.array([3]), rng.normal(size=(1, 16)), np.array([0]))  # id 3 is taken
    with pytest.raises(InvalidParameter):
        index.add(np.array([4]), rng.normal(size=(1, 8)), np.array([0]))  # wrong dimension
    with pytest.raises(InvalidParameter):
        index.delete()
    scores, found = index.search(rng.normal(size=16), 5)
    assert sorted(found[0][:3]) == [3, 5, 9] and (found[0][3:] == -1).all() and np.isinf(scores[0][3:]).all()
    assert index.labels_of(np.array([9, 5, -1, 77])).tolist() == [2, 1, -1, -1]
    assert index.delete(ids=np.array([5, 42])) == 1 and index.ids_of(1).tolist() == [3]
    assert index.delete(label=2) == 1 and index.count == 1


@pytest.mark.fast
def test_build_switches_to_ivf_at_the_threshold():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8))
    assert GalleryIndex.build(np.arange(300), x, np.zeros(300), exact_below=301).kind == "exact"
    assert GalleryIndex.build(np.arange(300), x, np.zeros(300), exact_below=300, ivf=IVFParams(4, 2)).kind == "ivf4,nprobe2"
    assert IVFParams.for_size(1_000_000) == IVFParams(1024, 64) and IVFParams.for_size(EXACT_BELOW) == IVFParams(256, 32)
    assert IVFParams.for_size(100) == IVFParams(16, 16)
    with pytest.raises(InvalidParameter):  # 16 cells need 16 x 39 training vectors
        GalleryIndex.build(np.arange(300), x, np.zeros(300), exact_below=0)


def test_milvus_lite_gives_the_same_search_deletes_a_person_and_persists(lfw_workspace, tmp_path):
    """The Milvus backend on a Milvus Lite file: FAISS's top-10 on real faces, the same metrics,
    "forget me" by label, and the rows still there when the file is opened again."""
    from unlearn_core.index_milvus import MilvusIndex

    ids, vectors, labels = gallery_of(lfw_workspace)
    test = lfw_workspace.parts.forget_test
    queries, q_labels = lfw_workspace.embed(lfw_workspace.original, "forget_test"), test.labels.cpu().numpy()
    uri = str(tmp_path / "gallery.db")
    milvus, faiss_index = MilvusIndex.build(uri, ids, vectors, labels), GalleryIndex.build(ids, vectors, labels)
    assert milvus.count == len(ids)
    (m_scores, m_ids), (f_scores, f_ids) = milvus.search(queries, 10), faiss_index.search(queries, 10)
    np.testing.assert_allclose(m_scores, f_scores, atol=1e-4)
    assert (m_ids == f_ids).mean() > 0.99  # ties may swap
    for metric, value in index_retrieval(faiss_index, queries, q_labels, test.image_ids).items():
        assert index_retrieval(milvus, queries, q_labels, test.image_ids)[metric] == pytest.approx(value, abs=1e-4)
    person = lfw_workspace.forget_classes[0]
    n_person = int((labels == person).sum())
    assert milvus.delete(label=person) == n_person and milvus.count == len(ids) - n_person
    assert not np.isin(milvus.search(queries, 20)[1], ids[labels == person]).any()
    kept = np.flatnonzero(labels != person)[:1]
    with pytest.raises(InvalidParameter, match="unique"):
        milvus.add(ids[kept], vectors[kept], labels[kept])
    milvus.close()
    reopened = MilvusIndex(uri, vectors.shape[1])
    assert reopened.count == len(ids) - n_person and len(reopened.ids_of(person)) == 0
    reopened.close()
