"""Tests of capstone.search.ann (the faiss index with exact re-rank) and its use by
ImageDatabase: results against the exact scan, saving, staleness, corrupt files, the threshold."""

from __future__ import annotations

import json

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
    assert choose(1_000_000, 200).factory == "IVF4096,PQ100x4fs"  # 64 training rows a list
    assert above.batches


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
