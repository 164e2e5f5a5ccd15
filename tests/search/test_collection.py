"""Tests of `capstone.search.collection`: indexing a folder incrementally, resuming (also after
a SIGKILL), migrating an earlier version's archive, folders that cannot be listed, searching.

The describer is a stand-in that derives a descriptor from each file's bytes and records what
it was asked to describe, so the tests see exactly which photos were described again.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest

from capstone.common.archive import ArchiveError, save_archive
from capstone.common.locks import FolderLocked
from capstone.embeddings.image import ImageEmbedder
from capstone.photos.describer import find_photos
from capstone.search.collection import (
    Collection,
    CollectionError,
    collection_file,
    in_one_process,
    index_folder,
    migrate,
)

MODEL = ImageEmbedder(8, seed=0)
INFO = {"run": "r", "model_sha256": "aaa"}


class FakeDescriber:
    """Descriptors from file bytes; files whose name holds "bad" fail, as unreadable photos."""

    def __init__(self, interrupt_after: int | None = None):
        self.calls: list[list[str]] = []
        self.interrupt_after = interrupt_after

    def __call__(self, paths: list[Path]):
        if self.interrupt_after is not None and len(self.calls) == self.interrupt_after:
            raise KeyboardInterrupt
        self.calls.append([p.name for p in paths])
        good = [p for p in paths if "bad" not in p.name]
        failures = [(p, "not an image file") for p in paths if "bad" in p.name]
        rows = [
            np.frombuffer(hashlib.sha512(p.read_bytes()).digest() * 8, dtype=np.uint8)[:512]
            for p in good
        ]
        descriptors = np.array(rows, dtype=np.float32).reshape(len(good), 512) / 255
        return descriptors, good, failures

    @property
    def described(self) -> list[str]:
        return sorted(name for call in self.calls for name in call)


def photos_in(folder: Path) -> list[Path]:
    return find_photos(folder)


def write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "photos"
    for i in range(5):
        write(folder, f"p{i}.jpg", f"photo {i}")
    write(folder, "sub/deep.jpg", "a photo in a subfolder")
    return folder


def index(folder, database, describer, model=MODEL, info=INFO, batch_size=2, unlisted=()):
    collection, report = index_folder(folder, database, model, info,
                                      in_one_process(describer, batch_size), photos_in(folder),
                                      unlisted=unlisted, progress=False)  # fmt: skip
    if collection is not None:
        collection.close()
    return report


def rows(database):
    """{relative path: (descriptor, embedding)} as stored, and the collection's info."""
    with Collection.open(database) as collection:
        ids, descriptors = collection.descriptors()
        matrix = collection.search_matrix()
        np.testing.assert_array_equal(matrix.ids, ids)
        paths = collection.paths_of(ids)
        stored = {p: (descriptors[i], matrix.embeddings[i]) for i, p in enumerate(paths)}
        return stored, collection.info, collection.folder


def test_a_new_folder_is_described_whole_and_saved(folder, tmp_path):
    describer = FakeDescriber()
    report = index(folder, tmp_path / "c.db", describer)
    names = sorted(p.name for p in photos_in(folder))
    assert describer.described == names
    assert (report.added, report.changed, report.removed, report.unchanged) == (6, 0, 0, 0)
    stored, info, where = rows(tmp_path / "c.db")
    assert sorted(stored) == sorted(p.relative_to(folder).as_posix() for p in photos_in(folder))
    assert where == folder.resolve() and info == INFO
    for path, (descriptor, embedding) in stored.items():
        expected, _, _ = FakeDescriber()([folder / path])
        # bitwise: what was written is what is read back
        assert descriptor.dtype == np.float32 and descriptor.tobytes() == expected[0].tobytes()
        # a product of a batch: equal to one row's up to rounding
        np.testing.assert_allclose(embedding, MODEL.embed(expected)[0], atol=1e-6)


def test_a_photo_changed_removed_added(folder, tmp_path):
    database = tmp_path / "c.db"
    index(folder, database, FakeDescriber())
    write(folder, "new.jpg", "a new photo")
    changed = write(folder, "p1.jpg", "photo 1, edited")
    os.utime(changed, ns=(1, 10**18))
    (folder / "p2.jpg").unlink()
    describer = FakeDescriber()
    report = index(folder, database, describer)
    assert describer.described == ["new.jpg", "p1.jpg"]
    assert (report.added, report.changed, report.removed, report.unchanged) == (1, 1, 1, 4)
    stored, _, _ = rows(database)
    assert "p2.jpg" not in stored and len(stored) == 6
    expected, _, _ = FakeDescriber()([changed])
    assert stored["p1.jpg"][0].tobytes() == expected[0].tobytes()
    # nothing changed: nothing described
    describer = FakeDescriber()
    report = index(folder, database, describer)
    assert describer.calls == [] and report.unchanged == 6


def test_photos_only_removed_are_dropped_from_the_saved_collection(folder, tmp_path):
    """Nothing to describe: the removal alone must still reach the database."""
    database = tmp_path / "c.db"
    index(folder, database, FakeDescriber())
    (folder / "p2.jpg").unlink()
    (folder / "sub" / "deep.jpg").unlink()
    describer = FakeDescriber()
    report = index(folder, database, describer)
    assert describer.calls == [] and (report.removed, report.unchanged) == (2, 4)
    assert sorted(rows(database)[0]) == ["p0.jpg", "p1.jpg", "p3.jpg", "p4.jpg"]


def test_a_second_indexing_of_one_collection_is_refused_at_once(folder, tmp_path):
    """While one indexing describes, another of the same collection fails naming it; the
    first finishes whole."""
    database = tmp_path / "holiday.db"
    refusals = []

    def describe_and_meanwhile_index_again(paths):
        if not refusals:
            with pytest.raises(FolderLocked) as refused:
                index(folder, database, FakeDescriber())
            refusals.append(str(refused.value))
        return FakeDescriber()(paths)

    report = index(folder, database, describe_and_meanwhile_index_again)
    [message] = refusals
    assert message.startswith(
        f"collection holiday ({database}) is in use by an indexing (process {os.getpid()} on "
        f"{socket.gethostname()}, since "
    )
    assert message.endswith("): wait for it to finish, or index into another collection (--name)")
    assert len(rows(database)[0]) == report.added == 6
    index(folder, database, FakeDescriber())  # released at the end


def test_an_interrupted_indexing_keeps_what_it_described(folder, tmp_path):
    database = tmp_path / "c.db"
    with pytest.raises(KeyboardInterrupt):
        index(folder, database, FakeDescriber(interrupt_after=2), batch_size=2)
    assert len(rows(database)[0]) == 4  # two batches of two were committed
    describer = FakeDescriber()
    report = index(folder, database, describer)
    assert len(describer.described) == 2 and report.unchanged == 4 and report.added == 2


def test_a_full_disk_is_an_error_naming_the_file_and_keeps_earlier_batches(folder, tmp_path):
    database = tmp_path / "c.db"
    index(folder, database, FakeDescriber())
    before = rows(database)
    n = 64  # more than the file's free pages hold
    with Collection.open(database) as collection:
        pages = collection._db.execute("PRAGMA page_count").fetchone()[0]
        collection._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own full disk
        with pytest.raises(OSError) as full:
            collection.add([f"new{i}.jpg" for i in range(n)], [1] * n, [1] * n,
                           np.ones((n, 512), np.float32), np.ones((n, 8), np.float32))  # fmt: skip
    assert str(full.value) == f"could not write {database}: database or disk is full"
    after = rows(database)
    assert after[0].keys() == before[0].keys() and after[1:] == before[1:]


def test_a_large_collection_searches_through_the_index_with_exact_scores(tmp_path):
    """Above its threshold a collection answers through the approximate index kept beside it
    (rebuilt when its rows change), with the exact scan's results when every candidate counts."""
    folder = tmp_path / "many"
    for i in range(300):
        write(folder, f"p{i:03}.jpg", f"photo number {i}")
    database = tmp_path / "c.db"
    index(folder, database, FakeDescriber(), batch_size=100)
    q = np.random.default_rng(0).normal(size=8).astype(np.float32)
    with Collection.open(database) as collection:
        exact = collection.query(q, 10, exact=True)
        collection.index_threshold = 100
        same(collection.query(q, 10, progress=False), exact)  # 300 rows: 7 lists, all probed
        faiss_file = database.with_name(database.name + ".ann.faiss")
        built = faiss_file.stat().st_mtime_ns
    write(folder, "p300.jpg", "one more photo")
    index(folder, database, FakeDescriber())
    with Collection.open(database) as collection:
        collection.index_threshold = 100
        found = collection.query(q, 301, progress=False)
        assert len(found) == 301 and faiss_file.stat().st_mtime_ns != built  # rebuilt, not reused
        same(found, collection.query(q, 301, exact=True))


def same(found, exact):
    """The same photos in the same order, scores equal to float32 rounding (the index re-ranks
    its candidates with a product of its own)."""
    assert [p for p, _ in found] == [p for p, _ in exact]
    np.testing.assert_allclose([s for _, s in found], [s for _, s in exact], rtol=0, atol=1e-6)


def _index_slowly(folder: Path, database: Path, described: Path, gate) -> None:
    """A child process: index with batches of 1, each photo recorded as described; after the
    second batch, wait on ``gate`` forever (the parent kills this process there)."""
    calls = []

    def describe(paths):
        if len(calls) == 2:
            gate.wait()
        calls.append(paths)
        with described.open("a") as f:
            f.write("".join(f"{p.name}\n" for p in paths))
        return FakeDescriber()(paths)

    index(folder, database, describe, batch_size=1)


def _committed(database: Path) -> int:
    if not database.is_file():
        return 0
    with Collection.open(database) as collection:
        return len(collection)


def test_an_indexing_killed_between_batches_resumes_losing_nothing(folder, tmp_path):
    """SIGKILL (no cleanup of any kind) after two committed batches: those rows are there, the
    lock is free, and the next indexing describes exactly the rest."""
    database, described = tmp_path / "c.db", tmp_path / "described.txt"
    context = multiprocessing.get_context("spawn")
    gate = context.Event()  # never set: the child waits on it until killed
    child = context.Process(target=_index_slowly, args=(folder, database, described, gate))
    child.start()
    try:
        while _committed(database) < 2:  # the condition: two batches committed
            assert child.is_alive(), "the indexing ended before it was killed"
            child.join(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join()
    assert child.exitcode == -signal.SIGKILL
    first = described.read_text().split()
    assert len(first) == 2 and sorted(rows(database)[0]) == sorted(
        p.relative_to(folder).as_posix() for p in photos_in(folder) if p.name in first
    )
    describer = FakeDescriber()
    report = index(folder, database, describer)
    assert sorted(describer.described + first) == sorted(p.name for p in photos_in(folder))
    assert (report.added, report.unchanged) == (4, 2) and len(rows(database)[0]) == 6


def test_unreadable_photos_are_reported_and_the_rest_indexed(folder, tmp_path):
    write(folder, "bad.jpg", "not a photo")
    report = index(folder, tmp_path / "c.db", FakeDescriber())
    assert [(p.name, why) for p, why in report.failures] == [("bad.jpg", "not an image file")]
    assert "bad.jpg" not in rows(tmp_path / "c.db")[0] and report.added == 6


def test_another_model_recomputes_the_embeddings_without_describing(folder, tmp_path):
    database = tmp_path / "c.db"
    index(folder, database, FakeDescriber())
    other = ImageEmbedder(8, seed=1)
    describer = FakeDescriber()
    index(folder, database, describer, model=other, info={"run": "s", "model_sha256": "bbb"})
    assert describer.calls == []
    stored, info, _ = rows(database)
    assert info == {"run": "s", "model_sha256": "bbb"}
    for descriptor, embedding in stored.values():
        np.testing.assert_allclose(embedding, other.embed(descriptor[None])[0], atol=1e-6)


def test_a_collection_of_another_folder_is_refused(folder, tmp_path):
    database = tmp_path / "c.db"
    index(folder, database, FakeDescriber())
    elsewhere = tmp_path / "other"
    write(elsewhere, "x.jpg", "x")
    with pytest.raises(ValueError, match=r"indexes .*photos, not .*other: choose another --name"):
        index(elsewhere, database, FakeDescriber())


def test_a_folder_that_cannot_be_listed_keeps_its_rows(folder, tmp_path, unlistable):
    """find_photos names the folder it could not list; its photos stay in the collection (not
    "removed"), while the rest is brought up to date."""
    database = tmp_path / "c.db"
    write(folder, "sub/more.jpg", "another photo in the subfolder")
    index(folder, database, FakeDescriber())
    unlistable(folder / "sub")
    unlisted = []
    photos = find_photos(folder, unlisted)
    assert unlisted == [(folder / "sub", "Permission denied")]
    assert not any("sub" in p.parts for p in photos)
    (folder / "p0.jpg").unlink()
    describer = FakeDescriber()
    report = index(folder, database, describer, unlisted=[p for p, _ in unlisted])
    assert describer.calls == []
    assert (report.kept, report.removed, report.unchanged) == (2, 1, 4)
    assert {"sub/deep.jpg", "sub/more.jpg"} <= set(rows(database)[0])
    # without the folder named, its photos would count as removed
    report = index(folder, database, FakeDescriber())
    assert report.removed == 2 and set(rows(database)[0]).isdisjoint({"sub/deep.jpg"})


def test_an_unlistable_folder_itself_is_an_error_naming_it(tmp_path, unlistable):
    from capstone.photos.describer import PhotoError

    write(tmp_path / "locked", "a.jpg", "a")
    unlistable(tmp_path / "locked")
    with pytest.raises(PhotoError, match=r"locked.*cannot be listed \(Permission denied"):
        find_photos(tmp_path / "locked")


def test_query_ranks_by_cosine(folder, tmp_path):
    database = tmp_path / "c.db"
    index(folder, database, FakeDescriber())
    with Collection.open(database) as collection:
        matrix = collection.search_matrix()
        q = np.array(matrix.embeddings[3]) + 0.01
        found = collection.query(q, 3)
        assert found[0][0] == collection.folder / collection.paths_of(matrix.ids[3:4])[0]
        scores = [s for _, s in found]
        assert scores == sorted(scores, reverse=True) and len(found) == 3
        expected = np.sort(matrix.embeddings @ (q / np.linalg.norm(q)))[::-1][:3]
        np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_the_search_matrix_is_cached_and_rebuilt_when_rows_change(folder, tmp_path):
    database = tmp_path / "c.db"
    index(folder, database, FakeDescriber())
    with Collection.open(database) as collection:
        first = collection.search_matrix()
        assert first.embeddings.shape == (6, 8) and first.embeddings.dtype == np.float32
        cached = sorted(p.name for p in tmp_path.glob("c.db.*-*.npy"))
        key = first.fingerprint
        assert cached == [f"c.db.ids-{key}.npy", f"c.db.matrix-{key}.npy"]
        assert collection.search_matrix() is first  # kept while current
    with Collection.open(database) as collection:
        again = collection.search_matrix()
    assert isinstance(again.embeddings, np.memmap)  # read from the cache, not rebuilt
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    assert again.fingerprint == first.fingerprint
    write(folder, "new.jpg", "a new photo")
    index(folder, database, FakeDescriber())
    with Collection.open(database) as collection:
        changed = collection.search_matrix()
    assert changed.fingerprint != first.fingerprint and len(changed.ids) == 7
    assert len(list(tmp_path.glob("c.db.*-*.npy"))) == 2  # the stale cache went


def test_collection_names_are_plain_file_names(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPSTONE_HOME", str(tmp_path))
    assert collection_file("holiday") == tmp_path / "collections" / "holiday.db"
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="a collection name is a plain file name"):
            collection_file(bad)


def _old_archive(path: Path, folder: Path, paths, descriptors, embeddings) -> None:
    """A collection as earlier versions saved it (`Collection.save` of the .npz days)."""
    n = len(paths)
    arrays = {"paths": np.array(paths, dtype=str), "sizes": np.arange(n, dtype=np.int64),
              "mtimes": np.arange(n, dtype=np.int64) * 7, "descriptors": descriptors,
              "embeddings": embeddings}  # fmt: skip
    meta = {**INFO, "folder": str(folder), "n_photos": n}
    save_archive(path, arrays, meta, kind="capstone.collection")


def test_an_old_archive_is_migrated_once_and_left_in_place(folder, tmp_path):
    rng = np.random.default_rng(0)
    descriptors = rng.normal(size=(3, 512)).astype(np.float32)
    embeddings = MODEL.embed(descriptors)
    _old_archive(tmp_path / "c.npz", folder.resolve(), ["p0.jpg", "p1.jpg", "sub/deep.jpg"],
                 descriptors, embeddings)  # fmt: skip
    before = (tmp_path / "c.npz").read_bytes()
    assert migrate(tmp_path / "c.db") == 3
    assert migrate(tmp_path / "c.db") is None  # once
    assert (tmp_path / "c.npz").read_bytes() == before
    stored, info, where = rows(tmp_path / "c.db")
    assert info == INFO and where == folder.resolve()
    for i, path in enumerate(["p0.jpg", "p1.jpg", "sub/deep.jpg"]):
        assert stored[path][0].tobytes() == descriptors[i].tobytes()
        assert stored[path][1].tobytes() == embeddings[i].tobytes()
    with Collection.open(tmp_path / "c.db") as collection:
        assert collection.stats()["p1.jpg"] == (1, 7)


def test_indexing_migrates_an_old_archive_first(folder, tmp_path):
    _old_archive(tmp_path / "c.npz", folder.resolve(), ["p0.jpg", "gone.jpg"],
                 np.ones((2, 512), np.float32), MODEL.embed(np.ones((2, 512), np.float32)))
    report = index(folder, tmp_path / "c.db", FakeDescriber())
    # the archive's sizes and times are not the files': described again, as changed
    assert (report.migrated, report.removed, report.changed, report.added) == (2, 1, 1, 5)


def test_nothing_to_migrate_is_not_refused_while_an_indexing_holds_it(folder, tmp_path):
    """A search calls migrate first: with no archive, or a database already made from the one
    left in place, there is nothing to do, so an indexing's lock must not refuse it."""
    database = tmp_path / "c.db"
    answers = []

    def describe_and_meanwhile_migrate(paths):
        answers.append(migrate(database))
        return FakeDescriber()(paths)

    index(folder, database, describe_and_meanwhile_migrate, batch_size=6)  # no database yet
    _old_archive(tmp_path / "c.npz", folder.resolve(), ["p0.jpg"], np.ones((1, 512), np.float32),
                 MODEL.embed(np.ones((1, 512), np.float32)))  # fmt: skip
    write(folder, "new.jpg", "a new photo")
    index(folder, database, describe_and_meanwhile_migrate)  # a database beside an archive
    assert answers == [None, None]
    assert len(rows(database)[0]) == 7  # the archive was not migrated over the database


@pytest.mark.parametrize(
    ("descriptors", "embeddings"),
    [((2, 512), (1, 8)), ((2, 100), (2, 8)), ((2, 512), (2,))],
    ids=["one embedding short", "descriptors not 512 wide", "embeddings not a matrix"],
)
def test_an_old_archive_with_mismatched_arrays_is_refused(folder, tmp_path, descriptors,
                                                          embeddings):  # fmt: skip
    _old_archive(tmp_path / "c.npz", folder, ["a.jpg", "b.jpg"], np.ones(descriptors, np.float32),
                 np.ones(embeddings, np.float32))  # fmt: skip
    with pytest.raises(ArchiveError) as refused:
        migrate(tmp_path / "c.db")
    assert str(refused.value) == (f"{tmp_path / 'c.npz'}: not a collection this version can read "
                                  "(its folder or arrays do not match); delete it or choose "
                                  "another --name")  # fmt: skip
    assert not (tmp_path / "c.db").exists()


def test_an_old_archive_without_one_of_its_arrays_is_refused(folder, tmp_path):
    meta = {**INFO, "folder": str(folder), "n_photos": 1}
    arrays = {"paths": np.array(["a.jpg"]), "sizes": np.ones(1, np.int64),
              "descriptors": np.ones((1, 512), np.float32),
              "embeddings": np.ones((1, 8), np.float32)}  # fmt: skip
    save_archive(tmp_path / "c.npz", arrays, meta, kind="capstone.collection")
    with pytest.raises(ArchiveError, match="mtimes"):
        migrate(tmp_path / "c.db")
    assert not (tmp_path / "c.db").exists()


def test_a_damaged_vector_is_a_clear_error(folder, tmp_path):
    import sqlite3

    database = tmp_path / "c.db"
    index(folder, database, FakeDescriber())
    with sqlite3.connect(database) as db:
        db.execute("UPDATE photos SET descriptor = ? WHERE path = ?", (b"short", "p1.jpg"))
    db.close()
    with Collection.open(database) as collection, pytest.raises(
        CollectionError, match="a descriptor is not 512 float32 values; the file is damaged"
    ):
        collection.descriptors()


def test_links_out_of_the_folder_and_broken_links(folder, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "far.jpg", "a photo kept elsewhere")
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (folder / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    report = index(folder, tmp_path / "c.db", FakeDescriber())
    stored, _, where = rows(tmp_path / "c.db")
    assert "linked/far.jpg" in stored
    assert [p.name for p, _ in report.failures] == ["broken.jpg"]
    assert report.failures[0][1] == "cannot be read (No such file or directory)"
    assert (where / "linked/far.jpg").read_text() == "a photo kept elsewhere"


def test_a_new_collection_is_written_only_once_it_holds_a_photo(tmp_path):
    folder = tmp_path / "unreadable"
    write(folder, "bad.jpg", "not a photo")
    report = index(folder, tmp_path / "c.db", FakeDescriber())
    assert report.added == 0 and len(report.failures) == 1
    assert not (tmp_path / "c.db").exists()


def test_indexing_reports_progress_by_default_counting_failures_as_done(
    folder, tmp_path, progress_events
):
    import capstone.search.collection as collection_module

    events = progress_events(collection_module)
    write(folder, "bad.jpg", "not a photo")  # 7 photos, in batches of 2
    describe = in_one_process(FakeDescriber(), 2)
    collection, report = index_folder(folder, tmp_path / "c.db", MODEL, INFO, describe,
                                      photos_in(folder))  # fmt: skip
    collection.close()
    assert len(report.failures) == 1
    assert events == [("enabled", True), ("start", "describing 7 photos", 7),
                                ("update", 2), ("update", 4), ("update", 6), ("update", 7),
                                ("finish", "described 6 of 7 photos")]  # fmt: skip
    (folder / "bad.jpg").unlink()
    write(folder, "p0.jpg", "photo 0, edited")
    report = index(folder, tmp_path / "c.db", FakeDescriber(), batch_size=2)
    assert (report.changed, report.added) == (1, 0)
    assert events[-1] == ("finish", "described 1 of 1 photos")


def test_in_one_process_describes_32_photos_a_batch_unless_told(tmp_path):
    paths = [tmp_path / f"p{i}.jpg" for i in range(40)]
    for path in paths:
        path.write_text(path.name)
    describer = FakeDescriber()
    batches = list(in_one_process(describer)(paths))
    assert [len(b.paths) for b in batches] == [32, 8]
    with pytest.raises(ValueError, match=r"^`batch_size` must be a positive integer, got 0$"):
        in_one_process(describer, 0)


def test_a_photo_changed_into_an_unreadable_one_loses_its_stale_row(folder, tmp_path):
    database = tmp_path / "c.db"
    index(folder, database, FakeDescriber())

    def describe_failing_broken(paths):
        broken = [p for p in paths if p.read_text() == "broken"]
        descriptors, good, failures = FakeDescriber()([p for p in paths if p not in broken])
        return descriptors, good, failures + [(p, "not an image file") for p in broken]

    write(folder, "p1.jpg", "broken")
    report = index(folder, database, describe_failing_broken)
    assert (report.changed, [p.name for p, _ in report.failures]) == (0, ["p1.jpg"])
    assert "p1.jpg" not in rows(database)[0]


def test_indexing_again_with_the_same_model_and_no_change_writes_nothing(folder, tmp_path):
    """The generation, and so the search matrix cache, stays: no re-embedding either."""
    database = tmp_path / "c.db"
    index(folder, database, FakeDescriber())
    with Collection.open(database) as collection:
        before = collection.fingerprint()
    report = index(folder, database, FakeDescriber())
    assert report.unchanged == 6
    with Collection.open(database) as collection:
        assert collection.fingerprint() == before


def test_a_batch_of_unreadable_files_alone_does_not_end_the_indexing(folder, tmp_path):
    write(folder, "a_bad1.jpg", "not a photo")  # sorted first: the first batch of two
    write(folder, "a_bad2.jpg", "not a photo")
    report = index(folder, tmp_path / "c.db", FakeDescriber(), batch_size=2)
    assert (len(report.failures), report.added) == (2, 6)


def test_an_interruption_before_the_new_collection_exists_is_raised_as_is(folder, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        index(folder, tmp_path / "c.db", FakeDescriber(interrupt_after=0))
    assert not (tmp_path / "c.db").exists()


def test_the_collection_is_held_by_a_lock_file_beside_it(folder, tmp_path):
    database = tmp_path / "c.db"
    held = []

    def describe(paths):
        held.append(database.with_name("c.db.lock").is_file())
        return FakeDescriber()(paths)

    index(folder, database, describe, batch_size=6)
    assert held == [True]
