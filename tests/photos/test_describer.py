"""Tests of capstone.photos.describer: describing a folder of photos, good and bad, and finding
them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from resnet_support import random_state, write_safetensors

from capstone.photos.describer import PhotoDescriber, PhotoError, find_photos
from capstone.photos.preprocess import load_photo, open_photo
from capstone.photos.resnet import ResNet18


@pytest.fixture(scope="module")
def describer() -> PhotoDescriber:
    return PhotoDescriber(random_state())


def photo(path: Path, size=(40, 30), seed=0, **options) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    Image.fromarray(pixels).save(path, **options)
    return path


@pytest.fixture
def album(tmp_path, monkeypatch) -> tuple[list[Path], dict[str, str]]:
    """Three good photos and four bad files (with a word of the reason each must give)."""
    # a cheap decompression bomb; the limit must still admit the 224 x 224 crop (Pillow checks it)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    good = [
        photo(tmp_path / "a.jpg", seed=1),
        photo(tmp_path / "c.png", size=(300, 200), seed=2),
        photo(tmp_path / "f.gif", size=(12, 20), seed=3),
    ]
    (tmp_path / "b.jpg").write_text("not a photo at all")
    truncated = photo(tmp_path / "d.jpg", size=(90, 90), seed=4, quality=95).read_bytes()
    (tmp_path / "d.jpg").write_bytes(truncated[: len(truncated) // 2])
    (tmp_path / "e.jpg").write_bytes(b"")
    Image.new("RGB", (1000, 250)).save(tmp_path / "g.png")  # 250,000 pixels > 2 x 100,000
    reasons = {"b.jpg": "not an image", "d.jpg": "truncated", "e.jpg": "empty",
               "g.png": "decompression-bomb"}  # fmt: skip
    return good, reasons


def test_describe_paths_reports_each_failure_and_goes_on(describer, tmp_path, album, capsys):
    good, reasons = album
    paths = find_photos(tmp_path)
    assert [p.name for p in paths] == [
        "a.jpg",
        "b.jpg",
        "c.png",
        "d.jpg",
        "e.jpg",
        "f.gif",
        "g.png",
    ]
    vectors, described, failures = describer.describe_paths(paths, batch_size=2)
    assert vectors.shape == (3, 512)
    assert vectors.dtype == np.float32
    assert described == good
    assert [path.name for path, _ in failures] == ["b.jpg", "d.jpg", "e.jpg", "g.png"]
    for path, reason in failures:
        assert reasons[path.name] in reason, (path.name, reason)
    for row, path in zip(vectors, described, strict=True):
        one = describer.describe(path)
        assert one.shape == (1, 512)
        np.testing.assert_allclose(row, one[0], rtol=1e-5, atol=1e-6)
    err = capsys.readouterr().err
    assert "described 3 photo(s)" in err
    assert "4 could not be read" in err


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batch_size_does_not_change_the_result(describer, tmp_path, batch_size):
    paths = [photo(tmp_path / f"{i}.png", size=(50 + i, 40), seed=i) for i in range(5)]
    vectors, described, failures = describer.describe_paths(
        paths, batch_size=batch_size, progress=False
    )
    expected = describer.network.describe(np.stack([load_photo(p) for p in paths]))
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)
    assert (described, failures) == (paths, [])


def test_quiet_and_empty(describer, capsys):
    vectors, described, failures = describer.describe_paths([], progress=False)
    assert vectors.shape == (0, 512) and vectors.dtype == np.float32
    assert (described, failures) == ([], [])
    assert capsys.readouterr().err == ""


def test_bad_batch_size(describer, tmp_path):
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        describer.describe_paths([tmp_path / "a.jpg"], batch_size=0)


@pytest.mark.parametrize(("name", "reason"), [("gone.jpg", "no such file"), (".", "folder")])
def test_describe_raises_photo_error(describer, tmp_path, name, reason):
    with pytest.raises(PhotoError, match=reason):
        describer.describe(tmp_path / name)


def test_describer_from_a_weights_file(describer, tmp_path):
    state = random_state()
    codes = {k: "I64" if v.dtype == np.int64 else "F32" for k, v in state.items()}
    path = write_safetensors(tmp_path / "resnet18.safetensors", state, codes)
    from_file = PhotoDescriber(path)
    assert isinstance(from_file.network, ResNet18)
    picture = photo(tmp_path / "p.jpg", size=(80, 60))
    np.testing.assert_array_equal(from_file.describe(picture), describer.describe(picture))


def test_describe_an_open_file_or_an_opened_image(describer, tmp_path):
    picture = photo(tmp_path / "p.png", size=(70, 50))
    expected = describer.describe(picture)
    with open(picture, "rb") as file:
        np.testing.assert_array_equal(describer.describe(file), expected)
    np.testing.assert_array_equal(describer.describe_image(open_photo(picture)), expected)


def test_describer_refuses_other_weights():
    state = random_state()
    del state["layer4.1.conv2.weight"]
    with pytest.raises(ValueError, match=r"layer4\.1\.conv2\.weight"):
        PhotoDescriber(state)


# -- find_photos -------------------------------------------------------------------------------


def test_find_photos_recursive_sorted_case_insensitive(tmp_path):
    (tmp_path / "trip" / "day2").mkdir(parents=True)
    names = ["z.JPG", "trip/b.jpeg", "trip/day2/c.Png", "a.webp", "d.tif", "e.TIFF", "f.bmp",
             "g.gif"]  # fmt: skip
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    for other in ["notes.txt", "trip/raw.cr2", "trip/jpg", "trip/day2/.hidden"]:
        (tmp_path / other).write_bytes(b"x")
    assert find_photos(tmp_path) == sorted(tmp_path / name for name in names)


def test_find_photos_survives_a_symlink_loop(tmp_path):
    (tmp_path / "sub").mkdir()
    photo(tmp_path / "sub" / "p.jpg")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")  # sub/loop -> the root: a cycle
    os.symlink(tmp_path / "sub", tmp_path / "again")  # a second way into sub
    found = find_photos(tmp_path)
    assert len(found) == 1
    assert found[0].name == "p.jpg"


def test_find_photos_follows_a_linked_folder(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "album").mkdir()
    photo(tmp_path / "elsewhere" / "p.png")
    os.symlink(tmp_path / "elsewhere", tmp_path / "album" / "linked")
    assert find_photos(tmp_path / "album") == [tmp_path / "album" / "linked" / "p.png"]


def test_find_photos_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no photos here")
    with pytest.raises(PhotoError, match="no photos") as info:
        find_photos(tmp_path / "empty")
    assert "empty" in str(info.value)
    with pytest.raises(PhotoError, match="is not a folder"):
        find_photos(tmp_path / "empty" / "readme.txt")
    with pytest.raises(PhotoError, match="no such folder"):
        find_photos(tmp_path / "missing")


def test_a_describer_keeps_freed_arrays_for_reuse(monkeypatch):
    # the network allocates and frees the same large arrays for every batch: on a Dask worker
    # (whose nanny pins glibc's mmap threshold) that was 2x slower without this
    import capstone.photos.describer as describer_module

    calls = []
    monkeypatch.setattr(describer_module, "reuse_freed_memory", lambda: calls.append(1))
    PhotoDescriber(random_state())
    assert calls == [1]
