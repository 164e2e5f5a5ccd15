"""Tests of `capstone.search.collection`: indexing a folder incrementally, resuming, searching.

The describer is a stand-in that derives a descriptor from each file's bytes and records what
it was asked to describe, so the tests see exactly which photos were described again.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from capstone.common.archive import ArchiveError
from capstone.common.locks import FolderLocked
from capstone.embeddings.image import ImageEmbedder
from capstone.photos.describer import find_photos
from capstone.search.collection import Collection, collection_file, index_folder

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


def index(folder, archive, describer, model=MODEL, info=INFO, batch_size=2):
    return index_folder(folder, archive, model, info, describer, photos_in(folder),
                        batch_size=batch_size, progress=False)  # fmt: skip


def test_a_new_folder_is_described_whole_and_saved(folder, tmp_path):
    describer = FakeDescriber()
    _, report = index(folder, tmp_path / "c.npz", describer)
    names = sorted(p.name for p in photos_in(folder))
    assert describer.described == names
    assert (report.added, report.changed, report.removed, report.unchanged) == (6, 0, 0, 0)
    loaded = Collection.load(tmp_path / "c.npz")
    assert sorted(loaded.paths) == sorted(
        p.relative_to(folder).as_posix() for p in photos_in(folder)
    )
    assert loaded.folder == folder.resolve() and loaded.info == INFO
    np.testing.assert_allclose(np.linalg.norm(loaded.embeddings, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(loaded.embeddings, MODEL.embed(loaded.descriptors))


def test_again_only_new_and_changed_photos_are_described(folder, tmp_path):
    archive = tmp_path / "c.npz"
    index(folder, archive, FakeDescriber())
    write(folder, "new.jpg", "a new photo")
    changed = write(folder, "p1.jpg", "photo 1, edited")
    os.utime(changed, ns=(1, 10**18))
    (folder / "p2.jpg").unlink()
    describer = FakeDescriber()
    collection, report = index(folder, archive, describer)
    assert describer.described == ["new.jpg", "p1.jpg"]
    assert (report.added, report.changed, report.removed, report.unchanged) == (1, 1, 1, 4)
    assert "p2.jpg" not in collection.paths and len(collection) == 6
    row = collection.paths.index("p1.jpg")
    expected, _, _ = FakeDescriber()([changed])
    np.testing.assert_array_equal(collection.descriptors[row], expected[0])
    # nothing changed: nothing described
    describer = FakeDescriber()
    _, report = index(folder, archive, describer)
    assert describer.calls == [] and report.unchanged == 6


def test_photos_only_removed_are_dropped_from_the_saved_collection(folder, tmp_path):
    """Nothing to describe: the removal alone must still reach the archive on disk."""
    archive = tmp_path / "c.npz"
    index(folder, archive, FakeDescriber())
    (folder / "p2.jpg").unlink()
    (folder / "sub" / "deep.jpg").unlink()
    describer = FakeDescriber()
    _, report = index(folder, archive, describer)
    assert describer.calls == [] and (report.removed, report.unchanged) == (2, 4)
    assert sorted(Collection.load(archive).paths) == ["p0.jpg", "p1.jpg", "p3.jpg", "p4.jpg"]


def test_a_second_indexing_of_one_collection_is_refused_at_once(folder, tmp_path):
    """While one indexing describes, another of the same collection fails naming it; the
    first finishes whole."""
    archive = tmp_path / "holiday.npz"
    refusals = []

    def describe_and_meanwhile_index_again(paths):
        if not refusals:
            with pytest.raises(FolderLocked) as refused:
                index(folder, archive, FakeDescriber())
            refusals.append(str(refused.value))
        return FakeDescriber()(paths)

    collection, _ = index(folder, archive, describe_and_meanwhile_index_again)
    [message] = refusals
    assert message.startswith(
        f"collection holiday ({archive}) is in use by an indexing (process {os.getpid()} on "
        f"{socket.gethostname()}, since "
    )
    assert message.endswith("): wait for it to finish, or index into another collection (--name)")
    assert len(Collection.load(archive)) == len(collection) == 6
    index(folder, archive, FakeDescriber())  # released at the end


def test_an_interrupted_indexing_keeps_what_it_described(folder, tmp_path):
    archive = tmp_path / "c.npz"
    with pytest.raises(KeyboardInterrupt):
        index(folder, archive, FakeDescriber(interrupt_after=2), batch_size=2)
    kept = Collection.load(archive)
    assert len(kept) == 4  # two batches of two were saved
    describer = FakeDescriber()
    collection, report = index(folder, archive, describer)
    assert len(describer.described) == 2 and report.unchanged == 4 and len(collection) == 6


def test_unreadable_photos_are_reported_and_the_rest_indexed(folder, tmp_path):
    write(folder, "bad.jpg", "not a photo")
    collection, report = index(folder, tmp_path / "c.npz", FakeDescriber())
    assert [(p.name, why) for p, why in report.failures] == [("bad.jpg", "not an image file")]
    assert "bad.jpg" not in collection.paths and len(collection) == 6
    assert report.added == 6


def test_another_model_recomputes_the_embeddings_without_describing(folder, tmp_path):
    archive = tmp_path / "c.npz"
    index(folder, archive, FakeDescriber())
    other = ImageEmbedder(8, seed=1)
    describer = FakeDescriber()
    collection, _ = index(folder, archive, describer, model=other,
                          info={"run": "s", "model_sha256": "bbb"})  # fmt: skip
    assert describer.calls == []
    assert collection.info["model_sha256"] == "bbb"
    np.testing.assert_array_equal(collection.embeddings, other.embed(collection.descriptors))


def test_a_collection_of_another_folder_is_refused(folder, tmp_path):
    archive = tmp_path / "c.npz"
    index(folder, archive, FakeDescriber())
    elsewhere = tmp_path / "other"
    write(elsewhere, "x.jpg", "x")
    with pytest.raises(ValueError, match=r"indexes .*photos, not .*other: choose another --name"):
        index(elsewhere, archive, FakeDescriber())


def test_query_ranks_by_cosine(folder, tmp_path):
    collection, _ = index(folder, tmp_path / "c.npz", FakeDescriber())
    q = collection.embeddings[3] + 0.01
    found = collection.query(q, 3)
    assert found[0][0] == collection.folder / collection.paths[3]
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True) and len(found) == 3
    assert Collection.empty(folder, 8, INFO).query(q, 3) == []


def test_collection_names_are_plain_file_names(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPSTONE_HOME", str(tmp_path))
    assert collection_file("holiday") == tmp_path / "collections" / "holiday.npz"
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="a collection name is a plain file name"):
            collection_file(bad)


def test_a_damaged_archive_is_a_clear_error(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    with pytest.raises(ArchiveError):
        Collection.load(tmp_path / "c.npz")


def test_links_out_of_the_folder_and_broken_links(folder, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "far.jpg", "a photo kept elsewhere")
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (folder / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    collection, report = index(folder, tmp_path / "c.npz", FakeDescriber())
    assert "linked/far.jpg" in collection.paths
    assert [p.name for p, _ in report.failures] == ["broken.jpg"]
    assert "cannot be read" in report.failures[0][1]
    assert (collection.folder / "linked/far.jpg").read_text() == "a photo kept elsewhere"


def test_an_archive_with_mismatched_arrays_is_refused(folder, tmp_path):
    collection, _ = index(folder, tmp_path / "c.npz", FakeDescriber())
    collection.embeddings = collection.embeddings[:2]
    collection.save(tmp_path / "bad.npz")
    with pytest.raises(ArchiveError, match="delete it or choose another --name"):
        Collection.load(tmp_path / "bad.npz")


def test_a_new_collection_is_written_only_once_it_holds_a_photo(tmp_path):
    folder = tmp_path / "unreadable"
    write(folder, "bad.jpg", "not a photo")
    collection, report = index(folder, tmp_path / "c.npz", FakeDescriber())
    assert len(collection) == 0 and len(report.failures) == 1
    assert not (tmp_path / "c.npz").exists()
