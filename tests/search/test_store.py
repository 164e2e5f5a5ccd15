"""Tests of `capstone.search.store`: a collection's SQLite database on its own (a query's
arguments, its approximate index kept per fingerprint, re-embedding with another model).

Indexing a folder into it is tested in test_collection.py; here rows are added directly.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from capstone.common.vectors import normalize_rows
from capstone.embeddings.image import ImageEmbedder
from capstone.search import store
from capstone.search.ann import AnnIndex, index_files
from capstone.search.store import Collection, CollectionError

MODEL = ImageEmbedder(8, seed=0)
OTHER = ImageEmbedder(8, seed=1)
INFO = {"run": "r", "model_sha256": "aaa"}


def filled(tmp_path, n: int, seed: int = 0) -> Collection:
    """An open collection of ``n`` photos p000.jpg... embedded by MODEL."""
    descriptors = np.random.default_rng(seed).normal(size=(n, 512)).astype(np.float32)
    collection = Collection.create(tmp_path / "c.db", tmp_path / "photos", 8, INFO)
    collection.add([f"p{i:03}.jpg" for i in range(n)], range(n), range(n), descriptors,
                   MODEL.embed(descriptors))  # fmt: skip
    return collection


def stored(collection: Collection) -> list[tuple[str, bytes, str]]:
    """(path, embedding bytes, model) of every row, in id order, as the file holds them."""
    with sqlite3.connect(collection.path) as db:
        found = db.execute("SELECT path, embedding, model FROM photos ORDER BY id").fetchall()
    db.close()
    return found


def test_a_query_answers_ten_photos_unless_told_and_names_a_bad_k(tmp_path):
    with filled(tmp_path, 12) as collection:
        q = np.ones(8, np.float32)
        assert len(collection.query(q)) == 10
        assert len(collection.query(q, 11)) == 11
        with pytest.raises(ValueError, match=r"^`k` must be a positive integer, got 0$"):
            collection.query(q, 0)


def test_a_query_of_ints_or_float64_is_answered_as_its_float32_values(tmp_path):
    """The scores are the float32 product whatever the query's type: equal, not close."""
    with filled(tmp_path, 12) as collection:
        q = np.array([3, 0, 1, 0, 0, 2, 0, 1])
        as_float32 = collection.query(q.astype(np.float32), 5)
        assert collection.query(q.tolist(), 5) == as_float32
        assert collection.query(q.astype(np.float64), 5) == as_float32


def test_a_query_with_another_models_embed_scans_its_embeddings_of_the_descriptors(tmp_path):
    with filled(tmp_path, 12) as collection:
        collection.index_threshold = 1  # another model's embeddings: never the saved index
        q = np.random.default_rng(1).normal(size=8).astype(np.float32)
        found = collection.query(q, 4, embed=OTHER.embed, progress=False)
        ids, descriptors = collection.descriptors()
        scores = OTHER.embed(descriptors) @ normalize_rows(q)
        best = np.argsort(-scores)[:4]
        paths = collection.paths_of(ids[best])
        assert [p for p, _ in found] == [collection.folder / p for p in paths]
        np.testing.assert_allclose([s for _, s in found], scores[best], rtol=1e-6)
        assert found != collection.query(q, 4, exact=True)  # not the stored embeddings' answer
        assert not index_files(collection.path)[0].exists()


def test_the_index_is_built_with_a_message_only_when_progress(tmp_path, capsys):
    q = np.ones(8, np.float32)
    with filled(tmp_path, 300) as collection:
        collection.index_threshold = 100
        quiet = collection.query(q, 5, progress=False)
        assert capsys.readouterr().err == ""
    for file in index_files(collection.path):
        file.unlink()
    with Collection.open(collection.path) as collection:
        collection.index_threshold = 100
        assert collection.query(q, 5) == quiet  # progress by default
        assert "building the search index PQ4x4fs over 300 rows" in capsys.readouterr().err


def test_the_index_is_kept_while_current_and_rebuilt_after_a_write(tmp_path, monkeypatch):
    calls = []
    for_matrix = AnnIndex.for_matrix
    monkeypatch.setattr(
        AnnIndex, "for_matrix", lambda *a, **k: calls.append(1) or for_matrix(*a, **k)
    )
    with filled(tmp_path, 300) as collection:
        collection.index_threshold = 100
        q = np.random.default_rng(2).normal(size=8).astype(np.float32)
        first = collection.query(q, 3, progress=False)
        assert collection.query(q, 3, progress=False) == first and len(calls) == 1
        # the index is saved under the collection's own fingerprint: no hash of its rows
        sidecar = json.loads(index_files(collection.path)[1].read_text())
        assert sidecar["fingerprint"] == collection.fingerprint()
        collection.add(["q.jpg"], [1], [1], np.zeros((1, 512), np.float32),
                       normalize_rows(q[None]))  # fmt: skip
        (best,) = collection.query(q, 1, progress=False)
        assert len(calls) == 2 and best == (collection.folder / "q.jpg", pytest.approx(1.0))


def test_reembed_recomputes_every_row_chunk_by_chunk_and_adopts_the_model(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_CHUNK_ROWS", 2)  # 5 rows: chunks of 2, 2 and 1
    with filled(tmp_path, 5) as collection:
        _, descriptors = collection.descriptors()
        generation = collection.generation
        collection.reembed(OTHER.embed, {"run": "s", "model_sha256": "bbb"})
        assert collection.info == {"run": "s", "model_sha256": "bbb"}
        assert collection.fingerprint() == f"5-{generation + 1}-bbb"
        rows = stored(collection)
        embeddings = np.frombuffer(b"".join(e for _, e, _ in rows), np.float32).reshape(5, 8)
        np.testing.assert_allclose(embeddings, OTHER.embed(descriptors), atol=1e-6)
        assert {m for _, _, m in rows} == {"bbb"}
        collection.add(["new.jpg"], [1], [1], descriptors[:1], OTHER.embed(descriptors[:1]))
        assert stored(collection)[-1][2] == "bbb"  # a later batch is by the adopted model
    with Collection.open(collection.path) as again:
        assert again.info == {"run": "s", "model_sha256": "bbb"}


def _wrong_width(descriptors):
    return OTHER.embed(descriptors)[:, :7].copy()


def _one_row_short(descriptors):
    return OTHER.embed(descriptors)[:-1]


@pytest.mark.parametrize(
    ("embed", "error", "message"),
    [
        (_wrong_width, ValueError, r"^embeddings must be \(n, 8\) float32, got \(2, 7\) float32$"),
        (_one_row_short, ValueError, "zip"),
        (OTHER.embed, CollectionError, "a descriptor is not 512 float32 values; the file is"),
    ],
    ids=["wrong width", "one row short", "damaged descriptor"],
)
def test_a_failed_reembed_is_named_and_changes_nothing(tmp_path, monkeypatch, embed, error,
                                                       message):  # fmt: skip
    """Not even the chunks re-embedded before the failure (one transaction)."""
    monkeypatch.setattr(store, "_CHUNK_ROWS", 2)  # p003.jpg is in the second chunk
    with filled(tmp_path, 5) as collection:
        if error is CollectionError:
            with sqlite3.connect(collection.path) as db:
                db.execute("UPDATE photos SET descriptor = ? WHERE path = 'p003.jpg'", (b"short",))
            db.close()
        before, generation = stored(collection), collection.generation
        with pytest.raises(error, match=message):
            collection.reembed(embed, {"run": "s", "model_sha256": "bbb"})
        assert stored(collection) == before and collection.generation == generation
        assert collection.info == INFO


def test_a_new_collection_is_empty_at_generation_zero_in_a_folder_made_for_it(tmp_path):
    path = tmp_path / "home" / "collections" / "c.db"  # collection_file's folders, not made yet
    with Collection.create(path, tmp_path / "photos", 8, INFO) as collection:
        assert (len(collection), collection.generation) == (0, 0)
        assert collection.fingerprint() == "0-0-aaa"
        assert (collection.folder, collection.d, collection.info) == (tmp_path / "photos", 8, INFO)
    with pytest.raises(FileExistsError, match=f"^{path} exists$"):
        Collection.create(path, tmp_path / "photos", 8, INFO)
    with pytest.raises(ValueError, match=r"^`d` must be a positive integer, got 0$"):
        Collection.create(tmp_path / "d.db", tmp_path / "photos", 0, INFO)
    assert not (tmp_path / "d.db").exists()


def test_a_fill_that_cannot_write_names_the_file_and_leaves_none(tmp_path):
    """``fill`` (a migration) writes to the new file under its temporary name: an error names
    that file, and nothing is left at the collection's path."""
    path = tmp_path / "c.db"

    def fill(collection):
        pages = collection._db.execute("PRAGMA page_count").fetchone()[0]
        collection._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own full disk
        n = 64
        collection.add([f"p{i}.jpg" for i in range(n)], [1] * n, [1] * n,
                       np.ones((n, 512), np.float32), np.ones((n, 8), np.float32))  # fmt: skip

    with pytest.raises(OSError) as full:
        Collection.create(path, tmp_path / "photos", 8, INFO, fill)
    temporary = tmp_path / f".c.db.{os.getpid()}.new"
    assert str(full.value) == f"could not write {temporary}: database or disk is full"
    assert not path.exists()


def test_every_write_raises_the_generation_by_one(tmp_path):
    with filled(tmp_path, 3) as collection:
        assert collection.generation == 1  # the add
        collection.remove(["p001.jpg"])
        collection.remove([])  # nothing to write
        assert collection.generation == 2 and len(collection) == 2
        collection.reembed(OTHER.embed, {"run": "s", "model_sha256": "bbb"})
        assert collection.generation == 3


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((2, 8), np.float64), ((2, 7), np.float32), ((2, 8, 1), np.float32), ((8,), np.float32)],
)
def test_add_refuses_embeddings_that_are_not_n_by_d_float32(tmp_path, shape, dtype):
    with filled(tmp_path, 1) as collection:
        with pytest.raises(ValueError) as refused:
            collection.add(["a.jpg", "b.jpg"], [1, 1], [1, 1], np.ones((2, 512), np.float32),
                           np.ones(shape, dtype))  # fmt: skip
        got = f"{shape} {np.dtype(dtype)}"
        assert str(refused.value) == f"embeddings must be (n, 8) float32, got {got}"
        with pytest.raises(ValueError, match=r"^descriptors must be \(n, 512\) float32, got "):
            collection.add(["a.jpg"], [1], [1], np.ones((1, 512)), np.ones((1, 8), np.float32))
        assert len(collection) == 1


def test_columns_are_read_chunk_by_chunk_into_one_matrix_in_id_order(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_CHUNK_ROWS", 2)  # 5 rows: chunks of 2, 2 and 1
    with filled(tmp_path, 5) as collection:
        ids, descriptors = collection.descriptors()
        matrix = collection.search_matrix()
        rows = stored(collection)
    assert ids.tolist() == matrix.ids.tolist() == [1, 2, 3, 4, 5]
    expected = np.random.default_rng(0).normal(size=(5, 512)).astype(np.float32)
    assert np.array_equal(descriptors, expected)
    assert matrix.embeddings.tobytes() == b"".join(e for _, e, _ in rows)


@pytest.mark.parametrize("bad", ["float64 ids", "float64 embeddings", "other width"])
def test_a_cache_of_the_wrong_type_or_shape_is_rebuilt_from_the_rows(tmp_path, bad):
    with filled(tmp_path, 4) as collection:
        good = collection.search_matrix()
        ids_file, matrix_file = collection._cache_files(good.fingerprint)
        ids, embeddings = np.array(good.ids), np.array(good.embeddings)
        if bad == "float64 ids":
            ids = ids.astype(np.float64)
        elif bad == "float64 embeddings":
            embeddings = embeddings.astype(np.float64)
        else:
            embeddings = np.ones((4, 9), np.float32)
        np.save(ids_file, ids)
        np.save(matrix_file, embeddings)
    with Collection.open(collection.path) as collection:
        again = collection.search_matrix()
    assert again.ids.dtype == np.int64 and again.embeddings.dtype == np.float32
    assert np.array_equal(again.ids, good.ids) and np.array_equal(again.embeddings, good.embeddings)


def test_the_search_matrix_is_read_only_built_or_cached(tmp_path):
    with filled(tmp_path, 3) as collection:
        built = collection.search_matrix()
    with Collection.open(collection.path) as collection:
        cached = collection.search_matrix()
    for matrix in (built, cached):
        with pytest.raises(ValueError, match="read-only"):
            matrix.embeddings[0, 0] = 1.0


def test_reembed_hands_the_model_float32_descriptors(tmp_path):
    given = []

    def embed(descriptors):
        given.append((descriptors.shape, descriptors.dtype))
        return OTHER.embed(descriptors)

    with filled(tmp_path, 3) as collection:
        collection.reembed(embed, {"run": "s", "model_sha256": "bbb"})
    assert given == [((3, 512), np.float32)]


def test_add_refuses_columns_of_different_lengths_adding_nothing(tmp_path):
    with filled(tmp_path, 1) as collection:
        with pytest.raises(ValueError, match="zip"):
            collection.add(["a.jpg", "b.jpg"], [1, 1], [1, 1], np.ones((3, 512), np.float32),
                           np.ones((3, 8), np.float32))  # fmt: skip
        assert len(collection) == 1 and collection.generation == 1


def _pragma(path, statement: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA {statement}")
    db.close()


def _refusal(path, error=CollectionError) -> str:
    with pytest.raises(error) as refused:
        Collection.open(path)
    return str(refused.value)


def test_opening_a_missing_corrupt_foreign_or_newer_file_says_which(tmp_path):
    path = tmp_path / "c.db"
    assert _refusal(path, FileNotFoundError) == f"{path}: no such collection"
    unreadable = (
        f"{path}: not a collection this version can read ({{}}); delete it or choose another --name"
    )
    path.write_bytes(b"not a database at all, just some bytes" * 200)
    assert _refusal(path) == unreadable.format("file is not a database")
    path.unlink()
    with sqlite3.connect(path) as db:  # another program's database
        db.execute("CREATE TABLE t (x)")
    db.close()
    assert _refusal(path) == f"{path}: a SQLite database, but not a capstone collection"
    path.unlink()
    _pragma(path, f"application_id = {store.APPLICATION_ID}")  # capstone's mark, but no tables
    assert _refusal(path) == unreadable.format("no such table: meta")
    path.unlink()
    filled(tmp_path, 1).close()
    newer = store.SCHEMA_VERSION + 1
    _pragma(path, f"user_version = {newer}")
    assert _refusal(path) == (
        f"{path}: made by a newer capstone (schema {newer}); upgrade capstone to read it"
    )


def test_a_stale_cache_removed_meanwhile_by_another_process_is_no_error(tmp_path, monkeypatch):
    """Two searches of a changed collection may both clear the old caches: a file the other one
    removed first is no error."""
    with filled(tmp_path, 3) as collection:
        old = collection.search_matrix()
        collection.remove(["p000.jpg"])
        glob = Path.glob
        vanished = tmp_path / f"c.db.ids-{old.fingerprint}-removed-meanwhile.npy"
        monkeypatch.setattr(Path, "glob", lambda self, pattern: [*glob(self, pattern), vanished])
        assert len(collection.search_matrix().ids) == 2


def test_only_the_collections_own_stale_caches_go_whatever_its_name(tmp_path):
    """A name with glob characters: "c[1]" clears its own caches, not those of "c1"."""
    descriptors = np.ones((2, 512), np.float32)
    for name in ("c[1].db", "c1.db"):
        with Collection.create(tmp_path / name, tmp_path / "photos", 8, INFO) as collection:
            collection.add(["a.jpg", "b.jpg"], [1, 1], [1, 1], descriptors,
                           MODEL.embed(descriptors))  # fmt: skip
            collection.search_matrix()
    with Collection.open(tmp_path / "c[1].db") as collection:
        collection.remove(["a.jpg"])
        current = collection.search_matrix().fingerprint
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == sorted(
        [f"c[1].db.ids-{current}.npy", f"c[1].db.matrix-{current}.npy",
         "c1.db.ids-2-1-aaa.npy", "c1.db.matrix-2-1-aaa.npy"]
    )  # fmt: skip
