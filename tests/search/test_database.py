"""Tests of capstone.search.database.ImageDatabase against a brute-force NumPy reference."""

from __future__ import annotations

import itertools
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.common.archive import ArchiveError, save_archive
from capstone.embeddings.image import MODEL_KIND, ImageEmbedder
from capstone.search.database import DATABASE_KIND, ImageDatabase, Match

D = 4
# Rows that are unit length *exactly* in float32 (normalizing leaves them unchanged), so that
# with small-integer queries every score is exact and ties are real ties.
_signed_one_hots = [s * np.eye(D)[i] for i in range(D) for s in (1, -1)]
_halves = [0.5 * (2 * np.array(bits) - 1) for bits in np.ndindex(*(2,) * D)]
UNIT_ROWS = np.array([*_signed_one_hots, *_halves, np.zeros(D)], dtype=np.float32)


def reference_top_k(ids, embeddings, query, k, exclude=()):
    """Brute force: cosine with every image, drop excluded ones, stable sort by decreasing
    score (so ties keep insertion order)."""
    ids = np.asarray(ids)
    query = np.asarray(query, np.float64)
    norm = np.sqrt((query**2).sum())
    unit_query = query / norm if norm > 0 else query
    scores = np.asarray(embeddings, np.float64) @ unit_query
    keep = np.flatnonzero(~np.isin(ids, list(exclude)))
    order = keep[np.argsort(-scores[keep], kind="stable")][:k]
    return [(int(ids[i]), float(scores[i])) for i in order]


def as_pairs(matches: list[Match]):
    return [(m.image_id, m.score) for m in matches]


database_contents = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n, unique=True),
        st.lists(st.integers(0, len(UNIT_ROWS) - 1), min_size=n, max_size=n),
    )
)
# Queries of any norm whose normalization is exact: unit rows times a power of two (or zero).
queries = st.lists(
    st.tuples(st.integers(0, len(UNIT_ROWS) - 1), st.sampled_from([0.25, 1.0, 2.0, 8.0])),
    min_size=1,
    max_size=3,
).map(lambda rows: np.array([scale * UNIT_ROWS[i] for i, scale in rows], np.float32))


@settings(max_examples=100, deadline=None)
@given(contents=database_contents, q=queries, k=st.integers(1, 15), data=st.data())
def test_query_matches_brute_force(contents, q, k, data):
    ids, rows = contents
    emb = UNIT_ROWS[rows]
    db = ImageDatabase(ids, emb)
    exclude = data.draw(st.lists(st.sampled_from([*ids, 123456789]), max_size=4), label="exclude")
    batch = db.query_batch(q, k=k, exclude=exclude)
    assert len(batch) == len(q)
    for query, got in zip(q, batch, strict=True):
        expected = reference_top_k(ids, emb, query, k, exclude)
        assert as_pairs(got) == expected
        assert as_pairs(db.query(query, k=k, exclude=exclude)) == expected
        assert len(got) == min(k, len(set(ids) - set(exclude)))
        assert not {m.image_id for m in got} & set(exclude)


def test_ties_ordered_by_insertion():
    emb = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 0]], np.float32)
    db = ImageDatabase([50, 40, 30, 20, 10], emb)
    assert [m.image_id for m in db.query(np.array([1.0, 0.0]), k=4)] == [50, 30, 10, 40]
    assert [m.image_id for m in db.query(np.array([1.0, 1.0]), k=5)] == [50, 40, 30, 20, 10]


def test_query_random_data_vs_reference():
    rng = np.random.default_rng(0)
    ids = rng.permutation(10**6)[:300]
    emb = rng.normal(size=(300, 50))
    db = ImageDatabase(ids, emb)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    np.testing.assert_allclose(db.embeddings, unit, rtol=1e-6, atol=1e-7)
    q = rng.normal(size=(5, 50)).astype(np.float32)
    for query, got in zip(q, db.query_batch(q, k=20), strict=True):
        expected = reference_top_k(ids, unit, query, 20)
        assert [m.image_id for m in got] == [i for i, _ in expected]
        np.testing.assert_allclose([m.score for m in got], [s for _, s in expected], rtol=1e-5)


def test_k_larger_than_database_returns_all():
    db = ImageDatabase([3, 1, 2], np.eye(3))
    got = db.query(np.array([0.0, 0.6, 0.8]), k=100)
    assert [m.image_id for m in got] == [2, 1, 3]
    assert [m.score for m in got] == pytest.approx([0.8, 0.6, 0.0], abs=1e-7)
    assert all(type(m.image_id) is int and type(m.score) is float for m in got)


def test_exclude():
    db = ImageDatabase([3, 1, 2], np.eye(3))
    q = np.array([3.0, 2.0, 1.0])
    assert [m.image_id for m in db.query(q, k=2, exclude=[3])] == [1, 2]
    assert [m.image_id for m in db.query(q, k=5, exclude=np.array([1, 99]))] == [3, 2]


def test_exclude_many_from_a_long_row():
    """300 images: the top-k samples every 64th score first, excluded ones among them."""
    rng = np.random.default_rng(2)
    ids = rng.permutation(10**6)[:300]
    emb = rng.normal(size=(300, 4)).astype(np.float32)
    db = ImageDatabase(ids, emb)
    exclude = ids[::2]
    for k in (1, 3):
        got = db.query(emb[0], k=k, exclude=exclude)
        expected = reference_top_k(ids, db.embeddings, emb[0], k, exclude)
        assert [m.image_id for m in got] == [i for i, _ in expected]


def test_exclude_repeated_id_counts_once():
    db = ImageDatabase([3, 1, 2], np.eye(3))
    got = db.query(np.array([3.0, 2.0, 1.0]), k=10, exclude=[3, 3, 3])
    assert [m.image_id for m in got] == [1, 2]


def test_exclude_everything():
    db = ImageDatabase([3, 1, 2], np.eye(3))
    assert db.query(np.ones(3), k=2, exclude=[1, 2, 3]) == []
    assert db.query_batch(np.ones((2, 3)), k=2, exclude=[1, 2, 3]) == [[], []]


def test_empty_database():
    db = ImageDatabase(np.array([], np.int64), np.zeros((0, 3)))
    assert len(db) == 0 and db.dim == 3
    assert db.query(np.ones(3), k=5) == []


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3", None, np.float64(2)])
def test_bad_k(k):
    db = ImageDatabase([1, 2], np.eye(2))
    with pytest.raises(ValueError, match=re.escape(f"`k` must be a positive integer, got {k!r}")):
        db.query(np.ones(2), k=k)
    with pytest.raises(ValueError, match=re.escape("`k` must be a positive integer")):
        db.query_batch(np.ones((1, 2)), k=k)


def test_k_defaults_to_ten():
    db = ImageDatabase(np.arange(12), np.ones((12, 2)))
    assert len(db.query(np.ones(2))) == 10
    assert [len(m) for m in db.query_batch(np.ones((2, 2)))] == [10, 10]


def test_numpy_integer_k():
    db = ImageDatabase([1, 2], np.eye(2))
    assert len(db.query(np.ones(2), k=np.int64(1))) == 1


@pytest.mark.parametrize("shape", [(3,), (1,), (2, 3), (1, 2, 2)])
def test_query_wrong_dimension(shape):
    db = ImageDatabase([1, 2], np.eye(2))
    with pytest.raises(ValueError, match=r"query vectors must have shape \(d,\) or \(Q, d\), d=2"):
        db.query_batch(np.ones(shape))
    if len(shape) == 1:
        with pytest.raises(ValueError, match="d=2"):
            db.query(np.ones(shape))


def test_query_batch_needs_2d():
    db = ImageDatabase([1, 2], np.eye(2))
    with pytest.raises(ValueError, match=re.escape("`vectors` must have shape (Q, 2)")):
        db.query_batch(np.ones(2))


def test_scores_are_cosines():
    emb = np.array([[3.0, 4.0], [0.0, 2.0]])
    db = ImageDatabase([1, 2], emb)
    np.testing.assert_allclose(db.scores(np.array([1.0, 0.0])), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(db.scores(np.array([10.0, 0.0])), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(
        db.scores(np.array([[0.0, 0.5], [-7.0, 0.0], [0.0, 0.0]])),
        [[0.8, 1.0], [-0.6, 0.0], [0.0, 0.0]],
        rtol=1e-6,
    )
    assert db.scores(np.ones((5, 2))).shape == (5, 2)
    [match] = ImageDatabase([7, 9], np.eye(2)).query(np.array([0.2, 1.0]), k=1)
    assert match.image_id == 9 and match.score == pytest.approx(1 / np.sqrt(1.04), rel=1e-6)


def test_integer_embeddings_and_queries_are_scored_in_float32():
    db = ImageDatabase([1, 2], [[3, 4], [0, 2]])
    np.testing.assert_allclose(db.embeddings, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)
    assert [m.image_id for m in db.query([1, 0], k=2)] == [1, 2]
    assert db.scores([0, 3]).dtype == np.float32
    assert db.scores(np.array([[0.0, 3.0]])).dtype == np.float32  # float64 queries too


def test_scores_of_raw_descriptor_queries_in_range():
    """As in search-by-image in descriptor space: large non-negative queries, cosine scores."""
    rng = np.random.default_rng(1)
    desc = np.abs(rng.normal(size=(50, 512))) * 30
    db = ImageDatabase(np.arange(50), desc)
    matches = db.query(desc[3], k=50)
    assert matches[0].image_id == 3 and matches[0].score == pytest.approx(1, abs=1e-6)
    assert all(-1 - 1e-6 <= m.score <= 1 + 1e-6 for m in matches)


# --- construction ----------------------------------------------------------------------------


def test_rows_normalized_and_lookup():
    db = ImageDatabase([10, 20], np.array([[3.0, 4.0], [0.0, 0.0]]), info={"glove": "g"})
    assert db.embeddings.dtype == np.float32 and db.image_ids.dtype == np.int64
    np.testing.assert_allclose(db.embedding(10), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(db.embedding(20), [0.0, 0.0])  # zero row stays zero, no NaN
    assert 10 in db and 30 not in db and np.int64(20) in db
    assert db.info == {"glove": "g"}
    with pytest.raises(KeyError, match="image id 30 is not in the database"):
        db.embedding(30)


@pytest.mark.parametrize(
    ("ids", "emb", "match"),
    [
        ([1, 2], np.ones((3, 2)), re.escape("`embeddings` must have shape (2, d), got (3, 2)")),
        ([1, 2], np.ones(2), re.escape("`embeddings` must have shape (2, d), got (2,)")),
        ([[1, 2]], np.ones((2, 2)), "`image_ids` must be a 1-D integer array"),
        ([1.0, 2.0], np.ones((2, 2)), "`image_ids` must be a 1-D integer array, got float64"),
        ([True, False], np.ones((2, 2)), "`image_ids` must be a 1-D integer array, got bool"),
        ([1, 1], np.ones((2, 2)), "^`image_ids` are not distinct$"),
    ],
)
def test_bad_construction(ids, emb, match):
    with pytest.raises(ValueError, match=match):
        ImageDatabase(ids, emb)


def test_bad_index_threshold_is_named():
    with pytest.raises(
        ValueError, match=re.escape("`index_threshold` must be a positive integer, got -1")
    ):
        ImageDatabase([1], np.ones((1, 2)), index_threshold=-1)


def test_build_from_model():
    model = ImageEmbedder(8, d_in=16, seed=0, info={"glove": "x"})
    x = np.abs(np.random.default_rng(0).normal(size=(5, 16))).astype(np.float32)
    db = ImageDatabase.build(model, [5, 4, 3, 2, 1], x)
    np.testing.assert_allclose(db.embeddings, model.embed(x), rtol=1e-6, atol=1e-7)
    assert db.info == {"glove": "x"} and db.info is not model.info
    assert db.query(model.embed(x[2:3])[0], k=1)[0].image_id == 3


# --- add -------------------------------------------------------------------------------------


def snapshot(db: ImageDatabase):
    q = np.ones(db.dim)
    return db.image_ids.copy(), db.embeddings.copy(), dict(db._rows), db.query(q, k=100)


def assert_same_snapshot(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2:] == b[2:]


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 20),
    cuts=st.lists(st.integers(0, 20), max_size=3),
    seed=st.integers(0, 2**16),
    start_empty=st.booleans(),
)
def test_add_incrementally_equals_build_at_once(n, cuts, seed, start_empty):
    rng = np.random.default_rng(seed)
    ids = rng.permutation(1000)[:n]
    emb = rng.normal(size=(n, 6))
    whole = ImageDatabase(ids, emb)
    bounds = sorted({0, n, *(c for c in cuts if c <= n)})
    if start_empty:
        db = ImageDatabase(np.array([], np.int64), np.zeros((0, 6)))
    else:  # the first chunk at construction, the others added
        db = ImageDatabase(ids[: bounds[1]], emb[: bounds[1]])
        bounds = bounds[1:]
    for a, b in itertools.pairwise(bounds):
        db.add(ids[a:b], emb[a:b])
    np.testing.assert_array_equal(db.image_ids, whole.image_ids)
    np.testing.assert_array_equal(db.embeddings, whole.embeddings)
    q = rng.normal(size=(2, 6))
    assert db.query_batch(q, k=5) == whole.query_batch(q, k=5)
    assert all(int(i) in db for i in ids)


def test_add_to_empty_database():
    db = ImageDatabase(np.array([], np.int64), np.zeros((0, 5)))
    db.add([7, 8], np.array([[1.0, 0.0], [0.0, 2.0]]))
    assert db.dim == 2 and len(db) == 2
    assert [m.image_id for m in db.query(np.array([0.0, 1.0]), k=2)] == [8, 7]


@pytest.mark.parametrize("new_ids", [[5, 2], [9, 9]])
def test_add_duplicate_id_leaves_database_unchanged(new_ids):
    db = ImageDatabase([1, 2, 3], np.eye(3))
    before = snapshot(db)
    with pytest.raises(ValueError, match=r"already in the database: \[2\]|are not distinct"):
        db.add(new_ids, np.ones((2, 3)))
    assert_same_snapshot(snapshot(db), before)


def test_added_images_are_found_by_id_in_a_non_empty_database():
    emb = np.eye(5)
    db = ImageDatabase([10, 20], emb[:2])
    db.add([30, 40, 50], emb[2:])
    for row, image_id in enumerate([10, 20, 30, 40, 50]):
        assert db.row(image_id) == row
        np.testing.assert_array_equal(db.embedding(image_id), emb[row])
    q = emb[2] + 0.5 * emb[3]
    assert [m.image_id for m in db.query(q, k=2)] == [30, 40]
    assert [m.image_id for m in db.query(q, k=2, exclude=[30])] == [40, 10]


def test_add_duplicate_message_names_ids():
    db = ImageDatabase([1, 2, 3], np.eye(3))
    with pytest.raises(ValueError, match=re.escape("image ids already in the database: [3, 1]")):
        db.add([3, 4, 1], np.ones((3, 3)))


def test_add_duplicate_message_names_the_first_ten_ids():
    db = ImageDatabase(np.arange(20), np.ones((20, 2)))
    with pytest.raises(
        ValueError, match=re.escape(f"image ids already in the database: {list(range(10))}")
    ):
        db.add(np.arange(12), np.ones((12, 2)))


def test_add_wrong_dimension_leaves_database_unchanged():
    db = ImageDatabase([1, 2, 3], np.eye(3))
    before = snapshot(db)
    with pytest.raises(ValueError, match="`embeddings` have dimension 2, the database 3"):
        db.add([4], np.ones((1, 2)))
    assert_same_snapshot(snapshot(db), before)


# --- save / load -----------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(n=st.integers(0, 30), d=st.integers(1, 10), seed=st.integers(0, 2**16))
def test_save_load_round_trip(n, d, seed):
    rng = np.random.default_rng(seed)
    db = ImageDatabase(rng.permutation(10**6)[:n], rng.normal(size=(n, d)), info={"s": seed})
    with tempfile.TemporaryDirectory() as tmp:
        path = db.save(Path(tmp) / "db.npz")
        loaded = ImageDatabase.load(path, d=d)
    np.testing.assert_array_equal(loaded.image_ids, db.image_ids)
    np.testing.assert_array_equal(loaded.embeddings, db.embeddings)  # bit for bit
    assert loaded.embeddings.dtype == np.float32 and loaded.image_ids.dtype == np.int64
    assert loaded.info == {"s": seed}
    assert loaded.dim == d and len(loaded) == n
    q = rng.normal(size=(3, d))
    assert loaded.query_batch(q, k=4) == db.query_batch(q, k=4)


def test_load_renormalizes_crafted_rows(tmp_path):
    path = tmp_path / "db.npz"
    save_archive(
        path,
        {"image_ids": np.array([1, 2]), "embeddings": np.array([[3.0, 4.0], [0.0, 5.0]])},
        {"n_images": 2, "d": 2},
        kind=DATABASE_KIND,
    )
    db = ImageDatabase.load(path)
    np.testing.assert_allclose(db.embeddings, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)
    assert db.embeddings.dtype == np.float32


def test_load_keeps_rows_only_within_a_millionth_of_unit(tmp_path):
    """Rows 3e-6 to 4e-6 off their unit length (2e-6 past the tolerance) are normalized."""
    path = tmp_path / "db.npz"
    stored = np.array([[0.6, 0.8], [0.0, 1.0]], np.float32) * np.float32(1 + 5e-6)
    save_archive(
        path,
        {"image_ids": np.array([1, 2]), "embeddings": stored},
        {"n_images": 2, "d": 2},
        kind=DATABASE_KIND,
    )
    db = ImageDatabase.load(path)
    assert not np.array_equal(db.embeddings, stored)
    np.testing.assert_array_equal(db.embeddings, ImageDatabase([1, 2], stored).embeddings)


@pytest.fixture
def saved_db(tmp_path):
    db = ImageDatabase([4, 5, 6], np.random.default_rng(0).normal(size=(3, 8)))
    return db, db.save(tmp_path / "db.npz")


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.97])
def test_load_truncated(saved_db, fraction):
    _, path = saved_db
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ArchiveError, match=re.escape(f"{path}: corrupt or truncated file")):
        ImageDatabase.load(path)


def test_failed_save_keeps_previous_file(saved_db, monkeypatch):
    db, path = saved_db
    before = path.read_bytes()

    def write_array_fails(fp, array, *args, **kwargs):
        fp.write(b"\x93NUMPY")
        raise OSError("no space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", write_array_fails)
    bigger = ImageDatabase([1, 2], np.eye(2))
    with pytest.raises(OSError, match="no space left"):
        bigger.save(path, overwrite=True)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    np.testing.assert_array_equal(ImageDatabase.load(path).embeddings, db.embeddings)


def test_save_over_existing_without_overwrite(saved_db):
    _, path = saved_db
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ImageDatabase([1], np.ones((1, 2))).save(path)
    assert path.read_bytes() == before
    ImageDatabase([1], np.ones((1, 2))).save(path, overwrite=True)
    assert ImageDatabase.load(path).image_ids.tolist() == [1]


def test_load_dimension_mismatch(saved_db):
    _, path = saved_db
    with pytest.raises(
        ArchiveError, match=re.escape(f"{path}: embeddings have dimension 8, expected 50")
    ):
        ImageDatabase.load(path, d=50)
    assert ImageDatabase.load(path, d=8).dim == 8


def test_model_file_loaded_as_database(tmp_path):
    path = ImageEmbedder(8, seed=0).save(tmp_path / "model.npz")
    with pytest.raises(
        ArchiveError, match=re.escape(f"holds '{MODEL_KIND}', expected '{DATABASE_KIND}'")
    ):
        ImageDatabase.load(path)


@pytest.mark.parametrize(
    ("arrays", "meta", "message"),
    [
        (
            {"image_ids": np.arange(3), "embeddings": np.ones((2, 4))},
            {"n_images": 3},
            "(3,) and embeddings (2, 4) do not match n_images=3",
        ),
        (
            {"image_ids": np.arange(3), "embeddings": np.ones((3, 4))},
            {"n_images": 4},
            "(3,) and embeddings (3, 4) do not match n_images=4",
        ),
        (
            {"image_ids": np.arange(3), "embeddings": np.ones(3)},
            {"n_images": 3},
            "(3,) and embeddings (3,) do not match n_images=3",
        ),
        (
            {"image_ids": np.ones((3, 1), int), "embeddings": np.ones((3, 4))},
            {"n_images": 3},
            "(3, 1) and embeddings (3, 4) do not match n_images=3",
        ),
        (
            {"image_ids": np.arange(3), "embeddings": np.ones((3, 4))},
            {},
            "(3,) and embeddings (3, 4) do not match n_images=None",
        ),
    ],
)
def test_load_inconsistent_arrays(tmp_path, arrays, meta, message):
    path = tmp_path / "db.npz"
    save_archive(path, arrays, meta, kind=DATABASE_KIND)
    with pytest.raises(ArchiveError, match=f"^{re.escape(f'{path}: image_ids {message}')}$"):
        ImageDatabase.load(path)


def test_load_missing_array(tmp_path):
    path = tmp_path / "db.npz"
    save_archive(path, {"image_ids": np.arange(3)}, {"n_images": 3}, kind=DATABASE_KIND)
    with pytest.raises(ArchiveError, match=r"missing array.*embeddings"):
        ImageDatabase.load(path)
