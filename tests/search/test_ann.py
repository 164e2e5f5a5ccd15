"""Tests of capstone.search.ann (the faiss index with exact re-rank) and its use by
ImageDatabase: results against the exact scan, saving, staleness, corrupt files, the threshold."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capstone.common.archive import ArchiveError
from capstone.common.vectors import normalize_rows, top_k
from capstone.search import ann
from capstone.search.ann import FLAT_ROWS, AnnIndex, Settings, choose, fingerprint, index_files
from capstone.search.database import ImageDatabase


def clustered(n: int, d: int, seed: int, clusters: int = 20, spread: float = 0.3) -> np.ndarray:
    """(n, d) unit rows around ``clusters`` random centres, as trained embeddings are."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    rows = centres[rng.integers(clusters, size=n)] + spread * rng.normal(size=(n, d))
    return normalize_rows(rows.astype(np.float32))


def exact_top(matrix: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return top_k(queries @ matrix.T, k)


@pytest.mark.parametrize(
    "factory, search",
    [
        ("HNSW16,Flat", "efSearch=400"),
        ("IVF8,Flat", "nprobe=8"),
        ("IVF8,SQ8", "nprobe=8"),
        ("PQ6x4fs", ""),  # the kinds `choose` picks
        ("IVF8,PQ6x4fs", "nprobe=8"),
    ],
)
def test_every_candidate_gives_the_exact_answer(factory, search):
    matrix = clustered(400, 12, seed=1)
    queries = clustered(30, 12, seed=2)
    index = AnnIndex.build(matrix, Settings(factory, search, candidates=400), progress=False)
    scores, rows = index.search(queries, 10)
    assert np.array_equal(rows, exact_top(matrix, queries, 10))
    # scores are the float32 rows' own dot products, not faiss's (quantized) ones
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ matrix.T, rows, 1), rtol=1e-6)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(640, 2000), d=st.integers(8, 48), seed=st.integers(0, 2**16))
def test_recall_against_exact_is_high(n, d, seed):
    """16 lists, half of them probed: a true neighbour is missed only when it lies in a list
    farther from the query than eight others (the worst of 120 seeds measured: 0.91)."""
    matrix = clustered(n, d, seed)
    queries = clustered(50, d, seed + 1)
    index = AnnIndex.build(matrix, Settings("IVF16,SQ8", "nprobe=8", 100), progress=False)
    _, rows = index.search(queries, 10)
    truth = exact_top(matrix, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, truth, strict=True)])
    assert recall >= 0.85


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(640, 2000), d=st.integers(8, 48), seed=st.integers(0, 2**16))
def test_recall_of_the_chosen_codes_with_200_candidates_is_high(n, d, seed):
    """The 4-bit codes `choose` picks, scoring every row, 200 candidates re-ranked (the worst
    of 60 seeds measured: 0.988; with 100 candidates, 0.916)."""
    matrix = clustered(n, d, seed)
    queries = clustered(50, d, seed + 1)
    chosen = choose(n, d, threshold=1)
    index = AnnIndex.build(matrix, Settings(chosen.factory, chosen.search, 200), progress=False)
    _, rows = index.search(queries, 10)
    truth = exact_top(matrix, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, truth, strict=True)])
    assert recall >= 0.95


def test_excluded_rows_are_never_returned():
    matrix = clustered(500, 8, seed=3)
    index = AnnIndex.build(matrix, Settings("HNSW16,Flat", "efSearch=500", 500), progress=False)
    scores = matrix[:5] @ matrix.T
    scores[:, [0, 1, 2]] = -np.inf
    _, rows = index.search(matrix[:5], 4, exclude_rows=[0, 1, 2])
    assert not np.isin(rows, [0, 1, 2]).any()
    assert np.array_equal(rows, top_k(scores, 4))


def test_saved_index_reloads_equal_without_building(tmp_path, capsys):
    matrix = clustered(600, 16, seed=4)
    beside = tmp_path / "db.npz"
    built = AnnIndex.for_matrix(matrix, beside, threshold=100)
    assert "building the search index" in capsys.readouterr().err
    assert all(p.is_file() for p in index_files(beside))
    loaded = AnnIndex.for_matrix(matrix, beside, threshold=100)
    assert capsys.readouterr().err == ""  # loaded, not built
    assert loaded.settings == built.settings and loaded.fingerprint == built.fingerprint
    queries = clustered(20, 16, seed=5)
    for a, b in zip(built.search(queries, 10), loaded.search(queries, 10), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("change", ["rows added", "model changed"])
def test_a_stale_index_is_rebuilt_not_used(tmp_path, capsys, change):
    matrix = clustered(600, 16, seed=6)
    beside = tmp_path / "db.npz"
    AnnIndex.for_matrix(matrix, beside, threshold=100)
    if change == "rows added":
        new = np.concatenate([matrix, clustered(50, 16, seed=7)])
    else:  # same shape, other embeddings
        new = normalize_rows(matrix + np.float32(0.01))
    capsys.readouterr()
    index = AnnIndex.for_matrix(new, beside, threshold=100)
    err = capsys.readouterr().err
    assert "is stale" in err and "building the search index" in err
    assert len(index) == len(new) and index.fingerprint == fingerprint(new)
    assert AnnIndex.load(beside, new).fingerprint == fingerprint(new)  # the new one was saved
    _, rows = index.search(new[-3:], 1)
    assert rows[:, 0].tolist() == [len(new) - 3, len(new) - 2, len(new) - 1]


def test_a_corrupt_index_file_is_named_and_rebuilt(tmp_path):
    matrix = clustered(400, 8, seed=8)
    beside = tmp_path / "db.npz"
    AnnIndex.for_matrix(matrix, beside, threshold=100, progress=False)
    path, _ = index_files(beside)
    path.write_bytes(b"not an index")
    with pytest.raises(ArchiveError, match=f"{path}.*sha256"):
        AnnIndex.load(beside, matrix)
    with pytest.warns(UserWarning, match=str(path)):
        index = AnnIndex.for_matrix(matrix, beside, threshold=100, progress=False)
    assert len(index) == 400
    assert AnnIndex.load(beside, matrix).fingerprint == fingerprint(matrix)


def test_bytes_faiss_cannot_read_are_a_clear_error(tmp_path):
    """Even when the sidecar's hash matches (a file from another faiss, say), faiss's own
    RuntimeError becomes an ArchiveError naming the file."""
    import hashlib

    matrix = clustered(400, 8, seed=9)
    beside = tmp_path / "db.npz"
    AnnIndex.for_matrix(matrix, beside, threshold=100, progress=False)
    path, sidecar = index_files(beside)
    path.write_bytes(b"garbage!" * 10)
    meta = json.loads(sidecar.read_text())
    meta["index_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ArchiveError, match=f"{path}: faiss cannot read"):
        AnnIndex.load(beside, matrix)


@pytest.mark.parametrize("sidecar_text", [None, "{not json", '{"kind": "other"}'])
def test_a_missing_or_foreign_sidecar_rebuilds(tmp_path, sidecar_text):
    matrix = clustered(400, 8, seed=10)
    beside = tmp_path / "db.npz"
    AnnIndex.for_matrix(matrix, beside, threshold=100, progress=False)
    _, sidecar = index_files(beside)
    if sidecar_text is None:
        sidecar.unlink()
    else:
        sidecar.write_text(sidecar_text)
    with pytest.warns(UserWarning, match="rebuilding the search index"):
        AnnIndex.for_matrix(matrix, beside, threshold=100, progress=False)
    assert AnnIndex.load(beside, matrix).fingerprint == fingerprint(matrix)


def test_below_the_threshold_there_is_no_index(tmp_path):
    matrix = clustered(50, 8, seed=11)
    assert choose(50, 8, threshold=51) is None
    assert choose(15, 8, threshold=1) is None  # a 4-bit code's 16 centroids need 16 rows
    assert AnnIndex.for_matrix(matrix, tmp_path / "db.npz", threshold=51) is None
    assert not index_files(tmp_path / "db.npz")[0].exists()


def test_choose_scores_every_code_up_to_flat_rows_then_probes_cells():
    assert choose(30_000, 200) == Settings("PQ100x4fs", "", 1000, batches=False)
    assert choose(FLAT_ROWS, 33).factory == "PQ33x4fs"  # an odd d: a code per coordinate
    above = choose(FLAT_ROWS + 1, 200)
    assert above.factory.startswith("IVF") and above.search.startswith("nprobe=")
    assert choose(1_000_000, 200) == Settings("IVF4096,PQ100x4fs", "nprobe=128", 1000, True)
    assert above == Settings("IVF3125,PQ100x4fs", "nprobe=128", 1000, True)  # 64 rows a list


def test_a_batch_is_re_ranked_a_bounded_number_of_rows_at_a_time(monkeypatch):
    matrix = clustered(600, 8, seed=21)
    queries = clustered(7, 8, seed=22)
    index = AnnIndex.build(matrix, Settings("PQ4x4fs", "", 50), progress=False)
    whole = index.search(queries, 10)
    monkeypatch.setattr(ann, "_RERANK_ROWS", 120)  # 2 queries' 50 candidates at a time
    chunked = index.search(queries, 10)
    assert np.array_equal(whole[1], chunked[1]) and np.array_equal(whole[0], chunked[0])
    exact = queries @ matrix.T
    np.testing.assert_allclose(chunked[0], np.take_along_axis(exact, chunked[1], 1), rtol=1e-6)


# -- through ImageDatabase ------------------------------------------------------------------------


def test_database_switches_to_the_index_at_its_threshold(tmp_path):
    emb = clustered(800, 16, seed=12)
    ids = np.arange(1000, 1800)
    small = ImageDatabase(ids, emb, index_threshold=801)
    assert small.index() is None and small.answering().startswith("exact scan of 800")
    db = ImageDatabase(ids, emb, index_threshold=800)
    db.save(tmp_path / "db.npz")
    assert isinstance(db.index(progress=False), AnnIndex)
    assert db.answering().startswith("approximate index PQ8x4fs")
    assert db.answering(exact=True).startswith("exact scan")
    assert index_files(tmp_path / "db.npz")[0].is_file()  # saved beside the database
    queries = clustered(40, 16, seed=13)
    approx = [db.query(q, 10) for q in queries]
    exact = db.query_batch(queries, 10, exact=True)
    hits = np.mean([len({m.image_id for m in a} & {m.image_id for m in b}) / 10
                    for a, b in zip(approx, exact, strict=True)])  # fmt: skip
    assert hits >= 0.95
    q = queries[0]
    top = db.query(q, 5, exclude=[exact[0][0].image_id])
    assert exact[0][0].image_id not in {m.image_id for m in top}
    for m in top:  # every score shown is the exact cosine, not faiss's 4-bit one
        assert m.score == pytest.approx(
            float(db.embedding(m.image_id) @ normalize_rows(q)), abs=1e-6
        )


def test_exact_never_touches_the_index(monkeypatch):
    db = ImageDatabase(np.arange(300), clustered(300, 8, seed=14), index_threshold=10)
    monkeypatch.setattr(AnnIndex, "for_matrix", lambda *a, **k: pytest.fail("index used"))
    assert len(db.query(np.ones(8), 3, exact=True)) == 3


def test_asking_for_every_image_never_touches_the_index(monkeypatch):
    db = ImageDatabase(np.arange(300), clustered(300, 8, seed=22), index_threshold=10)
    monkeypatch.setattr(AnnIndex, "for_matrix", lambda *a, **k: pytest.fail("index used"))
    assert len(db.query(np.ones(8), 300)) == 300
    assert [len(m) for m in db.query_batch(np.ones((2, 8)), 300)] == [300, 300]


def test_a_database_index_says_it_is_building_unless_told_not_to(capsys):
    db = ImageDatabase(np.arange(300), clustered(300, 8, seed=21), index_threshold=100)
    assert db.index(progress=False) is not None
    assert capsys.readouterr().err == ""
    db.add([300], clustered(1, 8, seed=23))
    db.index()
    assert "building the search index" in capsys.readouterr().err


def test_loaded_database_reuses_its_index_and_adding_rows_rebuilds(tmp_path, capsys):
    path = tmp_path / "db.npz"
    db = ImageDatabase(np.arange(500), clustered(500, 8, seed=15), index_threshold=100)
    db.save(path)
    db.index()
    capsys.readouterr()
    again = ImageDatabase.load(path, index_threshold=100)
    again.index()
    assert "building" not in capsys.readouterr().err
    again.add([9999], clustered(1, 8, seed=16))
    assert len(again.index()) == 501  # rebuilt in memory for the new rows
    (match,) = again.query(again.embedding(9999), 1)
    assert match.image_id == 9999


def test_a_query_whose_lists_hold_too_few_rows_is_answered_exactly():
    """One probed list of 16 holds ~25 of 400 rows: asking for 60 falls back to the scan."""
    matrix = clustered(400, 8, seed=17)
    queries = clustered(5, 8, seed=18)
    index = AnnIndex.build(matrix, Settings("IVF16,Flat", "nprobe=1", 10), progress=False)
    scores, rows = index.search(queries, 60, exclude_rows=[0, 5])
    full = queries @ matrix.T
    full[:, [0, 5]] = -np.inf
    assert np.array_equal(rows, top_k(full, 60))
    np.testing.assert_allclose(scores, np.take_along_axis(full, rows, 1), rtol=1e-6)


@pytest.mark.parametrize("batches", [False, True])
def test_a_batch_goes_through_the_index_only_where_its_settings_say(monkeypatch, batches):
    db = ImageDatabase(np.arange(500), clustered(500, 8, seed=19), index_threshold=10)
    index = db.index(progress=False)
    index.settings = Settings(index.settings.factory, index.settings.search, 100, batches)
    calls = []
    search = AnnIndex.search
    monkeypatch.setattr(
        AnnIndex, "search", lambda self, *a, **k: calls.append(1) or search(self, *a, **k)
    )
    queries = clustered(2, 8, seed=20)  # the smallest batch
    db.query_batch(queries, 5)
    assert len(calls) == batches
    db.query(queries[0], 5)
    assert len(calls) == batches + 1  # one query always does


# -- the fingerprint and the files ---------------------------------------------------------------


def _sha256_of(matrix: np.ndarray) -> str:
    import hashlib

    data = repr(matrix.shape).encode() + np.asarray(matrix, dtype=np.float32).tobytes()
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "matrix",
    [
        clustered(30, 4, seed=23),
        clustered(30, 4, seed=23).astype(np.float64),  # hashed as its float32 values
        clustered(30, 4, seed=23)[:, ::-1],  # not contiguous
        np.arange(100_003, dtype=np.float32)[:, None],  # more rows than one chunk of 100,000
    ],
    ids=["float32", "float64", "strided", "chunks"],
)
def test_fingerprint_is_the_sha256_of_the_shape_and_the_float32_values(matrix):
    assert fingerprint(matrix) == _sha256_of(matrix)


def test_fingerprint_tells_shapes_of_the_same_values_apart():
    values = clustered(6, 4, seed=24)
    assert fingerprint(values) != fingerprint(values.reshape(4, 6))
    assert fingerprint(values) == fingerprint(values.astype(np.float64))


def test_index_files_are_named_after_the_file_beside(tmp_path):
    assert index_files(tmp_path / "db.npz") == (
        tmp_path / "db.npz.ann.faiss",
        tmp_path / "db.npz.ann.json",
    )
    matrix = clustered(400, 8, seed=25)
    AnnIndex.for_matrix(matrix, tmp_path / "db.npz", threshold=100, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.npz.ann.faiss", "db.npz.ann.json"]


def test_describe_names_the_factory_its_search_parameter_and_the_candidates():
    matrix = clustered(400, 8, seed=26)
    flat = AnnIndex.build(matrix, Settings("PQ4x4fs", "", 50), progress=False)
    assert flat.describe() == "PQ4x4fs (50 candidates re-ranked exactly)"
    ivf = AnnIndex.build(matrix, Settings("IVF8,PQ4x4fs", "nprobe=8", 60), progress=False)
    assert ivf.describe() == "IVF8,PQ4x4fs (nprobe=8, 60 candidates re-ranked exactly)"


def test_the_sidecar_is_readable_json_of_what_was_built(tmp_path):
    import faiss

    matrix = clustered(400, 8, seed=27)
    built = AnnIndex.for_matrix(matrix, tmp_path / "db.npz", threshold=100, progress=False)
    _, sidecar = index_files(tmp_path / "db.npz")
    text = sidecar.read_text()
    meta = json.loads(text)
    assert text == json.dumps(meta, indent=1)  # one key a line, for a person reading it
    assert (meta["faiss"], meta["n"], meta["d"]) == (faiss.__version__, 400, 8)
    assert meta["settings"] == {"factory": "PQ4x4fs", "search": "", "candidates": 1000,
                                "batches": False}  # fmt: skip
    assert meta["fingerprint"] == fingerprint(matrix) == built.fingerprint
    assert built.build_seconds > 0 and meta["build_seconds"] == built.build_seconds
    assert AnnIndex.load(tmp_path / "db.npz", matrix).build_seconds == built.build_seconds
    del meta["build_seconds"]  # not needed to read the index back
    sidecar.write_text(json.dumps(meta))
    assert AnnIndex.load(tmp_path / "db.npz", matrix).build_seconds == 0.0


def _saved_sidecar(tmp_path, seed: int):
    matrix = clustered(400, 8, seed=seed)
    AnnIndex.for_matrix(matrix, tmp_path / "db.npz", threshold=100, progress=False)
    _, sidecar = index_files(tmp_path / "db.npz")
    return matrix, sidecar, json.loads(sidecar.read_text())


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"kind": "other"}, "kind 'other', version 1"),
        ({"format_version": 2}, "kind 'capstone.search.ann', version 2"),
        ({"index_sha256": 5}, "no index_sha256 or fingerprint"),
        ({"fingerprint": None}, "no index_sha256 or fingerprint"),
    ],
)
def test_a_sidecar_capstone_did_not_write_is_refused_naming_why(tmp_path, change, why):
    """Each field alone: another kind of the same version, the same kind of another version, a
    hash or a fingerprint that is not a string."""
    matrix, sidecar, meta = _saved_sidecar(tmp_path, seed=28)
    sidecar.write_text(json.dumps({**meta, **change}))
    message = f"{sidecar}: not a search-index sidecar capstone wrote ({why})"
    with pytest.raises(ArchiveError) as refused:
        AnnIndex.load(tmp_path / "db.npz", matrix)
    assert str(refused.value) == message


def test_a_missing_sidecar_is_named(tmp_path):
    matrix, sidecar, _ = _saved_sidecar(tmp_path, seed=29)
    sidecar.unlink()
    with pytest.raises(ArchiveError) as refused:
        AnnIndex.load(tmp_path / "db.npz", matrix)
    assert str(refused.value) == f"{sidecar} is missing: the index beside it cannot be checked"


def test_an_index_of_other_rows_is_refused_by_load(tmp_path):
    matrix, _, _ = _saved_sidecar(tmp_path, seed=30)
    path, _ = index_files(tmp_path / "db.npz")
    with pytest.raises(ArchiveError) as refused:
        AnnIndex.load(tmp_path / "db.npz", matrix[:-1])
    assert str(refused.value) == f"{path}: indexes 400 x 8 rows, not (399, 8)"


def test_search_names_k_and_scans_without_exclusions_when_lists_are_short():
    matrix = clustered(400, 8, seed=31)
    queries = clustered(5, 8, seed=32)
    index = AnnIndex.build(matrix, Settings("IVF16,Flat", "nprobe=1", 10), progress=False)
    with pytest.raises(ValueError, match=r"^`k` must be a positive integer, got 0$"):
        index.search(queries, 0)
    _, rows = index.search(queries, 60)  # fewer candidates than 60: the exact scan, no exclusion
    assert np.array_equal(rows, exact_top(matrix, queries, 60))


# -- building ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "n", "trained_on"),
    [
        ("PQ4x4fs", 400, 400),  # every row: fewer than faiss's 256 a centroid
        ("PQ4x4fs", 5000, 4096),  # 256 rows for each of 16 centroids
        ("IVF8,Flat", 600, 512),  # 64 rows a list
    ],
)
def test_build_reports_its_training_sample_and_each_chunk_added(
    monkeypatch, capsys, progress_events, factory, n, trained_on
):
    events = progress_events(ann)
    monkeypatch.setattr(ann, "_ADD_CHUNK", 150)
    matrix = clustered(n, 8, seed=33)
    start = time.perf_counter()
    index = AnnIndex.build(matrix, Settings(factory, "", 10))  # progress by default
    elapsed = time.perf_counter() - start
    said = capsys.readouterr().err
    assert said == f"building the search index {factory} over {n:,} rows (once)\n"
    assert 0 < index.build_seconds <= elapsed
    added = [("update", min(lo + 150, n)) for lo in range(0, n, 150)]
    assert events == [
        ("enabled", True),
        ("start", f"training {factory} on {trained_on:,} rows", 1),
        ("start", f"adding {n:,} rows", n),
        *added,
        ("finish", f"built the search index ({factory}) over {n:,} rows in "
                   f"{index.build_seconds:.1f} s"),
    ]  # fmt: skip
    assert added[-1] == ("update", n) and len(added) > 2
    AnnIndex.build(matrix, Settings(factory, "", 10), progress=False)
    assert events[len(added) + 4] == ("enabled", False) and capsys.readouterr().err == ""


def test_build_trains_faiss_by_inner_product_on_distinct_rows_drawn_reproducibly():
    """Up to 4,096 rows the codes train on every row once (a sample drawn with replacement
    would repeat some and miss others); above, on a seeded sample: the same bytes each time."""
    import faiss

    matrix = clustered(400, 8, seed=34)
    built = AnnIndex.build(matrix, Settings("PQ4x4fs", "", 10), progress=False)
    by_hand = faiss.index_factory(8, "PQ4x4fs", faiss.METRIC_INNER_PRODUCT)
    by_hand.train(matrix)
    by_hand.add(matrix)
    assert np.array_equal(faiss.serialize_index(built.index), faiss.serialize_index(by_hand))
    large = clustered(5000, 8, seed=35)
    first, again = (AnnIndex.build(large, Settings("PQ4x4fs", "", 10), progress=False)
                    for _ in range(2))  # fmt: skip
    assert np.array_equal(faiss.serialize_index(first.index), faiss.serialize_index(again.index))


def test_build_fingerprints_the_rows_unless_given_one():
    matrix = clustered(400, 8, seed=36)
    settings = Settings("PQ4x4fs", "", 10)
    assert AnnIndex.build(matrix, settings, progress=False).fingerprint == fingerprint(matrix)
    given = AnnIndex.build(matrix, settings, fingerprint_="rows-3-abc", progress=False)
    assert given.fingerprint == "rows-3-abc"


# -- searching -----------------------------------------------------------------------------------


def test_search_answers_float32_scores_of_float32_queries_whatever_their_type():
    matrix = clustered(400, 8, seed=37)
    queries = clustered(30, 8, seed=38)
    index = AnnIndex.build(matrix, Settings("PQ4x4fs", "", 50), progress=False)
    scores, rows = index.search(queries, 10)
    assert scores.dtype == np.float32 and rows.dtype == np.int64
    for other in (queries.astype(np.float64), queries.tolist()):
        again = index.search(other, 10)
        assert again[0].dtype == np.float32
        assert np.array_equal(again[0], scores) and np.array_equal(again[1], rows)


def test_search_with_every_row_excluded_or_k_above_the_rest():
    matrix = clustered(100, 8, seed=39)
    queries = clustered(3, 8, seed=40)
    index = AnnIndex.build(matrix, Settings("PQ4x4fs", "", 10), progress=False)
    scores, rows = index.search(queries, 5, exclude_rows=range(100))
    assert (scores.shape, scores.dtype, rows.shape, rows.dtype) == ((3, 0), np.float32, (3, 0),
                                                                    np.int64)  # fmt: skip
    scores, rows = index.search(queries, 100, exclude_rows=[7, 8, 9])
    assert rows.shape == (3, 97) and not np.isin(rows, [7, 8, 9]).any()
    assert np.isfinite(scores).all()


def test_a_row_excluded_from_its_own_query_is_skipped_among_many_candidates():
    """k=1 among 300 candidates (`top_k`'s sampled path): a query's own row, its best
    candidate (exact codes: the first), excluded, as "more like this photo" does."""
    matrix = clustered(600, 8, seed=41)
    index = AnnIndex.build(matrix, Settings("Flat", "", 300), progress=False)
    _, rows = index.search(matrix[:3], 1, exclude_rows=[0, 1, 2])
    full = matrix[:3] @ matrix.T
    full[:, :3] = -np.inf
    assert np.array_equal(rows, top_k(full, 1))


def test_the_exact_fallback_over_many_rows_leaves_excluded_rows_out():
    """1,024 lists of ~16 rows, one probed: 64 results need the scan of all 16,384 rows, whose
    70 excluded rows must not be taken for the best (`top_k`'s sampled path on long rows, every
    64th row sampled: here the excluded ones)."""
    matrix = clustered(16_384, 8, seed=42)
    queries = clustered(3, 8, seed=43)
    index = AnnIndex.build(matrix, Settings("IVF1024,Flat", "nprobe=1", 10), progress=False)
    excluded = list(range(0, 64 * 70, 64))
    _, rows = index.search(queries, 64, exclude_rows=excluded)
    full = queries @ matrix.T
    full[:, excluded] = -np.inf
    assert np.array_equal(rows, top_k(full, 64))


def test_a_query_with_enough_candidates_is_answered_from_them_not_rescanned():
    """One probed list of 8 holds ~100 rows: the top 5 of its first 5 (or, one row excluded,
    6) candidates re-ranked, even where the exact scan would find better rows elsewhere."""
    matrix = clustered(800, 8, seed=44)
    queries = clustered(50, 8, seed=45)
    index = AnnIndex.build(matrix, Settings("IVF8,Flat", "nprobe=1", 5), progress=False)
    _, proposed = index.index.search(queries, 6)

    def reranked(candidates):
        scores = np.take_along_axis(queries @ matrix.T, candidates, 1)
        return np.take_along_axis(candidates, top_k(scores, 5), 1)

    _, rows = index.search(queries, 5)
    assert np.array_equal(rows, reranked(proposed[:, :5]))
    assert not np.array_equal(rows, exact_top(matrix, queries, 5))  # the scan's differ
    excluded = proposed[0, 0]
    _, rows = index.search(queries, 5, exclude_rows=[excluded])
    kept = np.array([[c for c in row if c != excluded][:5] for row in proposed])
    assert np.array_equal(rows, reranked(kept))


def test_one_query_searches_on_one_thread_and_a_batch_on_all():
    import faiss

    class Threads:  # the faiss index, noting the threads each search may use
        def __init__(self, index):
            self.index, self.seen = index, []

        def __getattr__(self, name):
            return getattr(self.index, name)

        def search(self, q, k):
            self.seen.append(faiss.omp_get_max_threads())
            faiss.omp_set_num_threads(1)  # searched on one: no fresh pool in a forked process
            try:
                return self.index.search(q, k)
            finally:
                faiss.omp_set_num_threads(self.seen[-1])

    matrix = clustered(400, 8, seed=46)
    index = AnnIndex.build(matrix, Settings("PQ4x4fs", "", 50), progress=False)
    index.index = Threads(index.index)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        index.search(matrix[:1], 3)
        assert faiss.omp_get_max_threads() == 2  # restored
        index.search(matrix[:4], 3)
    finally:
        faiss.omp_set_num_threads(before)
    assert index.index.seen == [1, 2]


def test_a_batch_larger_than_one_re_rank_step_re_ranks_every_query(monkeypatch):
    monkeypatch.setattr(ann, "_RERANK_ROWS", 1200)  # 3 queries' 400 candidates at a time
    matrix = clustered(400, 8, seed=47)
    queries = clustered(10, 8, seed=48)
    index = AnnIndex.build(matrix, Settings("PQ4x4fs", "", 400), progress=False)
    scores, rows = index.search(queries, 10)
    assert np.array_equal(rows, exact_top(matrix, queries, 10))
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ matrix.T, rows, 1), rtol=1e-6)


# -- for_matrix ----------------------------------------------------------------------------------


def test_a_stale_index_says_why_it_is_rebuilt(tmp_path, capsys):
    matrix = clustered(400, 8, seed=49)
    beside = tmp_path / "db.npz"
    path, _ = index_files(beside)
    AnnIndex.build(matrix, Settings("PQ4x4fs", "", 50), progress=False).save(beside)
    AnnIndex.for_matrix(matrix, beside, threshold=100)  # today's settings: 1000 candidates
    assert capsys.readouterr().err.startswith(
        f"the search index {path} is stale (its settings are not today's PQ4x4fs ()): "
        "rebuilding it\nbuilding the search index PQ4x4fs over 400 rows (once)\n"
    )
    AnnIndex.for_matrix(normalize_rows(matrix + np.float32(0.01)), beside, threshold=100)
    assert capsys.readouterr().err.startswith(
        f"the search index {path} is stale (the rows or the model changed): rebuilding it\n"
    )


def test_for_matrix_keeps_a_given_fingerprint_and_is_quiet_without_progress(tmp_path, capsys):
    """A store's own fingerprint of its rows is what the index is saved and reused under."""
    matrix = clustered(400, 8, seed=50)
    beside = tmp_path / "db.npz"
    built = AnnIndex.for_matrix(matrix, beside, threshold=100, fingerprint_="400-7-abc",
                                progress=False)  # fmt: skip
    assert capsys.readouterr().err == ""
    assert built.fingerprint == "400-7-abc"
    assert json.loads(index_files(beside)[1].read_text())["fingerprint"] == "400-7-abc"
    again = AnnIndex.for_matrix(matrix, beside, threshold=100, fingerprint_="400-7-abc")
    assert capsys.readouterr().err == "" and again.fingerprint == "400-7-abc"  # loaded


def test_an_index_that_cannot_be_saved_is_kept_in_memory_with_a_warning(tmp_path):
    (tmp_path / "a file").write_text("not a folder")
    beside = tmp_path / "a file" / "db.npz"
    matrix = clustered(400, 8, seed=51)
    with pytest.warns(UserWarning, match=f"^could not save the search index beside {beside}: "):
        index = AnnIndex.for_matrix(matrix, beside, threshold=100, progress=False)
    assert len(index) == 400 and index.fingerprint == fingerprint(matrix)
