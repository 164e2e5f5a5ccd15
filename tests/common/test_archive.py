"""Tests of capstone.common.archive: exact round trips, kinds, corruption and atomic saves."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.common import archive
from capstone.common.archive import (
    FORMAT_VERSION,
    ArchiveError,
    atomic_write,
    load_archive,
    save_archive,
)

KIND = "test.kind"

numeric_dtypes = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="?"),
    hnp.unsigned_integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?"),
    hnp.complex_number_dtypes(endianness="?"),
)
numeric_arrays = hnp.arrays(
    dtype=numeric_dtypes,
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)
array_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
metadata_dicts = st.dictionaries(
    st.text().filter(lambda k: k not in ("kind", "format_version")), json_values, max_size=5
)


def assert_same_array(a: np.ndarray, b: np.ndarray):
    """Equal bit for bit: dtype (with byte order), shape and every byte of the values."""
    assert a.dtype == b.dtype and a.dtype.byteorder == b.dtype.byteorder
    assert a.shape == b.shape
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@settings(max_examples=60, deadline=None)
@given(arrays=st.dictionaries(array_names, numeric_arrays, max_size=4), metadata=metadata_dicts)
def test_round_trip_exact(arrays, metadata):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.npz"
        assert save_archive(path, arrays, metadata, kind=KIND) == path
        loaded, meta = load_archive(path, kind=KIND, required=tuple(arrays))
        assert files_in(Path(tmp)) == ["a.npz"]
        with np.load(path) as npz:  # readable by plain NumPy, without pickle
            for name, a in arrays.items():
                assert_same_array(npz[name], a)
    assert sorted(loaded) == sorted(arrays)
    for name, a in arrays.items():
        assert_same_array(loaded[name], a)
    assert meta == {**metadata, "kind": KIND, "format_version": FORMAT_VERSION}


def test_round_trip_examples(tmp_path):
    arrays = {
        "weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "ids": np.array([2**62, -5, 0], dtype=np.int64),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(20, dtype=np.int16)[::3],
        "scalar": np.float64(np.pi),
        "special": np.array([np.nan, -0.0, np.inf, -np.inf, 1e-310]),
        "empty": np.zeros((0, 5), np.float32),
        "list": [1, 2, 3],
    }
    meta = {"glove": "glove.6B.50d", "n": 3, "nested": {"a": [1, 2.5, None, True]}, "é": "ü"}
    save_archive(tmp_path / "x.npz", arrays, meta, kind=KIND)
    loaded, got = load_archive(tmp_path / "x.npz", kind=KIND)
    for name, a in arrays.items():
        assert_same_array(loaded[name], np.asarray(a))
    assert loaded["fortran"].flags.f_contiguous
    assert got == {**meta, "kind": KIND, "format_version": FORMAT_VERSION}


def test_metadata_readable_as_json(tmp_path):
    save_archive(tmp_path / "x.npz", {"w": np.eye(2)}, {"note": "hi"}, kind=KIND)
    with zipfile.ZipFile(tmp_path / "x.npz") as zf:
        assert sorted(zf.namelist()) == ["metadata.json", "w.npy"]
        assert json.loads(zf.read("metadata.json")) == {
            "note": "hi",
            "kind": KIND,
            "format_version": FORMAT_VERSION,
        }


def test_metadata_is_sorted_indented_json_whatever_the_order_given(tmp_path):
    # `unzip -p FILE metadata.json` is how a person reads it: one key per line, in one order
    save_archive(tmp_path / "x.npz", {}, {"zeta": [1, 2], "alpha": "a"}, kind=KIND)
    with zipfile.ZipFile(tmp_path / "x.npz") as zf:
        text = zf.read("metadata.json").decode()
    assert text.splitlines() == [
        "{",
        '  "alpha": "a",',
        f'  "format_version": {FORMAT_VERSION},',
        f'  "kind": "{KIND}",',
        '  "zeta": [',
        "    1,",
        "    2",
        "  ]",
        "}",
    ]


def test_arrays_are_stored_as_zip64_members(tmp_path):
    # stored, not deflated (float noise barely compresses), and zip64 from the start: a member
    # past 4 GiB would otherwise fail half-written ("File size too large")
    save_archive(tmp_path / "x.npz", {"w": np.eye(2)}, {}, kind=KIND)
    with zipfile.ZipFile(tmp_path / "x.npz") as zf:
        member = zf.getinfo("w.npy")
    assert member.compress_type == zipfile.ZIP_STORED
    assert member.extract_version >= zipfile.ZIP64_VERSION


def test_kind_in_metadata_is_overridden(tmp_path):
    save_archive(tmp_path / "x.npz", {}, {"kind": "liar", "format_version": 99}, kind=KIND)
    _, meta = load_archive(tmp_path / "x.npz", kind=KIND)
    assert meta == {"kind": KIND, "format_version": FORMAT_VERSION}


def test_folder_is_created(tmp_path):
    path = tmp_path / "a" / "b" / "x.npz"
    save_archive(path, {"w": np.ones(2)}, {}, kind=KIND)
    assert path.is_file()


# --- wrong kind, wrong content ---------------------------------------------------------------


def test_kind_mismatch_names_both(tmp_path):
    path = tmp_path / "x.npz"
    save_archive(path, {"w": np.ones(2)}, {}, kind="capstone.image.model")
    with pytest.raises(
        ArchiveError,
        match=re.escape(
            f"{path}: holds 'capstone.image.model', expected 'capstone.search.database'"
        ),
    ):
        load_archive(path, kind="capstone.search.database")


def test_missing_required_array(tmp_path):
    path = tmp_path / "x.npz"
    save_archive(path, {"w": np.ones(2)}, {}, kind=KIND)
    with pytest.raises(ArchiveError, match=re.escape(f"{path}: missing array(s) a, b")):
        load_archive(path, kind=KIND, required=("w", "a", "b"))


def test_plain_numpy_npz_is_refused(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.ones(3))
    with pytest.raises(
        ArchiveError, match=re.escape(f"{path}: not a capstone file (it has no metadata.json)")
    ):
        load_archive(path, kind=KIND)


def test_unsupported_format_version(tmp_path):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"kind": KIND, "format_version": 2}))
    with pytest.raises(ArchiveError, match=r"format_version 2 is not supported"):
        load_archive(path, kind=KIND)


@pytest.mark.parametrize("content", [b"[1, 2]", b"{not json", b"\xff\xfe"])
def test_metadata_not_an_object(tmp_path, content):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", content)
    with pytest.raises(ArchiveError, match=re.escape(str(path))):
        load_archive(path, kind=KIND)


def test_pickled_member_is_refused(tmp_path):
    """A member that needs pickle (crafted by hand) is an error, never unpickled."""
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"kind": KIND, "format_version": 1}))
        with zf.open("o.npy", "w") as member:
            np.lib.format.write_array(member, np.array([{}], dtype=object), allow_pickle=True)
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        load_archive(path, kind=KIND)


@pytest.mark.parametrize("array", [np.array([None, 1], dtype=object), ["a", 1, None]])
def test_object_arrays_refused(tmp_path, array):
    with pytest.raises(TypeError, match=r"array 'bad' has dtype object.*pickle"):
        save_archive(tmp_path / "x.npz", {"ok": np.ones(2), "bad": array}, {}, kind=KIND)
    assert files_in(tmp_path) == []


def test_unserializable_metadata_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        save_archive(tmp_path / "x.npz", {"w": np.ones(2)}, {"x": object()}, kind=KIND)
    assert files_in(tmp_path) == []


def test_missing_file(tmp_path):
    path = tmp_path / "none.npz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_archive(path, kind=KIND)


# --- truncation and corruption ---------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "x.npz"
    rng = np.random.default_rng(0)
    save_archive(path, {"w": rng.normal(size=(64, 8)), "i": np.arange(10)}, {"a": 1}, kind=KIND)
    return path


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file(saved, fraction):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ArchiveError, match=re.escape(f"{saved}: corrupt or truncated file")):
        load_archive(saved, kind=KIND)


def test_flipped_byte_in_array_data(saved):
    """A damaged array is caught by the zip checksum, not loaded with wrong values."""
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("w.npy")
    # Data of a stored member begins after its 30-byte local header, name and extra field.
    header = data[info.header_offset : info.header_offset + 30]
    start = info.header_offset + 30 + int.from_bytes(header[26:28], "little")
    start += int.from_bytes(header[28:30], "little")
    data[start + info.file_size - 5] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        load_archive(saved, kind=KIND)


def test_not_a_zip(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("hello")
    with pytest.raises(ArchiveError, match=re.escape(f"{path}: corrupt or truncated file")):
        load_archive(path, kind=KIND)


def test_archive_error_is_a_value_error():
    assert issubclass(ArchiveError, ValueError)


# --- overwriting and atomicity ---------------------------------------------------------------


def test_existing_file_without_overwrite(saved):
    before = saved.read_bytes()
    with pytest.raises(FileExistsError, match=re.escape(f"{saved} already exists")):
        save_archive(saved, {"w": np.zeros(3)}, {}, kind=KIND)
    assert saved.read_bytes() == before
    assert files_in(saved.parent) == [saved.name]


def test_overwrite_replaces(saved):
    save_archive(saved, {"z": np.zeros(3)}, {"b": 2}, kind=KIND, overwrite=True)
    arrays, meta = load_archive(saved, kind=KIND)
    assert list(arrays) == ["z"] and meta["b"] == 2 and "a" not in meta
    assert files_in(saved.parent) == [saved.name]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_leaves_previous_file(saved, monkeypatch, error):
    before = saved.read_bytes()
    real_write_array = np.lib.format.write_array
    calls = []

    def write_array_then_fail(fp, array, *args, **kwargs):
        calls.append(array.shape)
        if len(calls) == 2:  # the first array is written, the second breaks midway
            fp.write(b"\x93NUMPY partial")
            raise error
        real_write_array(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_array_then_fail)
    big = {"a": np.ones((100, 100)), "b": np.ones((100, 100)), "c": np.ones(3)}
    with pytest.raises(type(error)):
        save_archive(saved, big, {"new": True}, kind=KIND, overwrite=True)
    assert len(calls) == 2
    assert saved.read_bytes() == before
    assert files_in(saved.parent) == [saved.name]  # no temporary file left behind
    monkeypatch.undo()
    assert load_archive(saved, kind=KIND)[1]["a"] == 1


def test_interrupted_rename_leaves_previous_file(saved, monkeypatch):
    before = saved.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("rename failed")

    monkeypatch.setattr(archive.os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        save_archive(saved, {"w": np.zeros(3)}, {}, kind=KIND, overwrite=True)
    assert saved.read_bytes() == before
    assert files_in(saved.parent) == [saved.name]


def test_atomic_write_failure_on_new_path(tmp_path):
    def write(f):
        f.write(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(tmp_path / "new.bin", write)
    assert files_in(tmp_path) == []


def test_atomic_write_writes(tmp_path):
    path = atomic_write(tmp_path / "f.bin", lambda f: f.write(b"abc"))
    assert path == tmp_path / "f.bin" and path.read_bytes() == b"abc"
    with pytest.raises(FileExistsError):
        atomic_write(path, lambda f: f.write(b"xyz"))
    assert path.read_bytes() == b"abc"
    atomic_write(path, lambda f: f.write(b"xyz"), overwrite=True)
    assert path.read_bytes() == b"xyz"


def test_a_failed_write_names_the_file_it_was_writing(tmp_path):
    """A full disk raises an OSError that names no file: the message then names the one being
    written (and no temporary file stays); an error that names one is raised as it is."""
    path = tmp_path / "f.bin"

    def fail(error):
        def write(f):
            raise error

        return write

    with pytest.raises(OSError) as raised:
        atomic_write(path, fail(OSError(errno.ENOSPC, "No space left on device")))
    e = raised.value
    assert (e.errno, e.strerror, e.filename) == (errno.ENOSPC, "No space left on device", str(path))
    assert isinstance(e.__cause__, OSError) and e.__cause__.filename is None
    for error in (OSError(errno.EACCES, "Permission denied", "/elsewhere"), OSError("no errno")):
        with pytest.raises(OSError) as raised:
            atomic_write(path, fail(error))
        assert raised.value is error
    assert os.listdir(tmp_path) == []


def test_the_file_is_written_beside_its_destination_under_a_hidden_temporary_name(tmp_path):
    # beside it: the final rename stays on one file system, so it is atomic; hidden and .tmp:
    # a file left by a crash is plainly not the user's
    seen = []
    atomic_write(tmp_path / "f.bin", lambda f: seen.extend(os.listdir(tmp_path)))
    assert len(seen) == 1 and re.fullmatch(r"\.f\.bin\..+\.tmp", seen[0])
    assert os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_the_mode_of_the_users_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "f.bin", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode
