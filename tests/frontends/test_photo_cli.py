"""Tests of the photo commands: describe, search --image, similar/tags --photo, index and
search --collection, with small random ResNet-18 weights (no download: there is no network)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import requests
from cli_support import RUN, argparse_exit, run, run_json
from PIL import Image
from resnet_support import random_state, write_safetensors

from capstone.dataset import load_dataset
from capstone.photos.describer import PhotoDescriber
from capstone.runs import Run


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    state = random_state()
    codes = {k: "I64" if v.dtype == np.int64 else "F32" for k, v in state.items()}
    return write_safetensors(tmp_path_factory.mktemp("weights") / "r18.safetensors", state, codes)


def make_photo(path, seed: int, size=(64, 48)):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "holiday"
    for i in range(4):
        make_photo(folder / f"p{i}.jpg", i)
    make_photo(folder / "more" / "p4.png", 4)
    (folder / "notes.jpg").write_text("not a photo")
    return folder


def test_describe_writes_the_course_pickle_format(capsys, weights, photos, tmp_path):
    out = tmp_path / "features.pkl"
    paths = [photos / "p0.jpg", photos / "notes.jpg", photos / "p1.jpg"]
    code, stdout, err = run(capsys, "describe", *paths, "--out", out, "--weights", weights)
    assert code == 0, err
    assert f"skipped {photos / 'notes.jpg'}" in err
    features = pickle.loads(out.read_bytes())
    assert sorted(features) == [1, 2]
    describer = PhotoDescriber(weights)
    for i, path in ((1, paths[0]), (2, paths[2])):
        assert features[i].shape == (1, 512) and features[i].dtype == np.float32
        np.testing.assert_allclose(features[i], describer.describe(path), rtol=1e-5, atol=1e-6)
        assert f"{i}  |x|" in stdout and str(path) in stdout


def test_describe_refuses_to_replace_a_file(capsys, weights, photos, tmp_path):
    out = tmp_path / "features.pkl"
    out.write_bytes(b"the user's data")
    code, err = argparse_exit(capsys, "describe", photos / "p0.jpg", "--out", out)
    assert code == 2 and "exists: choose a new file (nothing replaced)" in err
    assert out.read_bytes() == b"the user's data"


def test_describe_with_no_good_photo_is_an_error(capsys, weights, photos):
    code, _, err = run(capsys, "describe", photos / "notes.jpg", "--weights", weights)
    assert code == 2 and "error: no photo could be described" in err


def test_offline_without_weights_says_both_ways_to_get_them(
    capsys, photos, monkeypatch, fresh_home
):
    def offline(*args, **kwargs):
        raise requests.ConnectionError("no network")

    monkeypatch.setattr(requests, "get", offline)
    code, _, err = run(capsys, "describe", photos / "p0.jpg")
    assert code == 2
    assert "--weights" in err and "online" in err and "Traceback" not in err


def test_search_similar_and_tags_by_an_unseen_photo(capsys, home, weights, photos):
    photo = photos / "p2.jpg"
    descriptor = PhotoDescriber(weights).describe(photo)
    engine = Run.load(RUN).engine(load_dataset(home / "minicoco"))
    found = run_json(capsys, "search", "--image", photo, "--weights", weights, "-k", 4)
    expected = engine.similar_to_descriptor(descriptor, 4)
    assert [r["image_id"] for r in found["results"]] == [r.image_id for r in expected]
    similar = run_json(capsys, "similar", "--photo", photo, "--space", "descriptor",
                       "--weights", weights, "-k", 3)  # fmt: skip
    expected = engine.similar_to_descriptor(descriptor, 3, space="descriptor")
    assert [r["image_id"] for r in similar["results"]] == [r.image_id for r in expected]
    tags = run_json(capsys, "tags", "--photo", photo, "--weights", weights, "-k", 3)
    assert [t["word"] for t in tags] == [w for w, _ in engine.tags_of_descriptor(descriptor, 3)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search"], "give a query TEXT or --image PHOTO (one of them)"),
        (["search", "dog", "--image", "{photo}"], "give a query TEXT or --image PHOTO"),
        (["similar"], "give an IMAGE_ID or --photo PHOTO (one of them)"),
        (["tags", "5", "--photo", "{photo}"], "give an IMAGE_ID or --photo PHOTO"),
        (["similar", "--photo", "{photo}", "--add", "snow"], "work with an IMAGE_ID, not --photo"),
        (["search", "dog", "--paths"], "--paths prints the photos of a --collection"),
        (["search", "dog", "--collection", "nothing"], "no collection 'nothing'"),
    ],
)
def test_photo_flags_are_checked(capsys, home, photos, argv, message):
    argv = [a.format(photo=photos / "p0.jpg") for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err


def test_a_missing_photo_is_an_argparse_error(capsys, photos):
    code, err = argparse_exit(capsys, "search", "--image", photos / "missing.jpg")
    assert code == 2 and "missing.jpg: no such file" in err


def test_index_then_search_a_collection_by_text(capsys, home, weights, photos, monkeypatch):
    code, out, err = run(capsys, "index", photos, "--weights", weights)
    assert code == 0, err
    assert "collection holiday: 5 photos" in out and "(5 added, 0 changed, 0 removed" in out
    assert f"skipped {photos / 'notes.jpg'}" in err
    code, out, err = run(capsys, "search", "a dog on a beach", "--collection", "holiday",
                         "--paths", "-k", 3)  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.startswith(str(photos.resolve())) for line in lines)
    found = run_json(capsys, "search", "a dog", "--collection", "holiday", "-k", 10)
    assert len(found["results"]) == 5
    scores = [r["score"] for r in found["results"]]
    assert scores == sorted(scores, reverse=True)
    # again with nothing to describe (the unreadable file gone): no weights needed, no network
    (photos / "notes.jpg").unlink()
    monkeypatch.setattr(requests, "get", lambda *a, **k: pytest.fail("no network in tests"))
    code, out, err = run(capsys, "index", photos)
    assert code == 0, err
    assert "(0 added, 0 changed, 0 removed, 5 unchanged, 0 skipped)" in out
    # again, after a change: only the new photo is described
    make_photo(photos / "new.jpg", 9)
    code, out, _ = run(capsys, "index", photos, "--weights", weights)
    assert code == 0 and "(1 added, 0 changed, 0 removed, 5 unchanged, 0 skipped)" in out


def test_index_a_folder_without_photos_is_an_error(capsys, home, weights, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "index", tmp_path / "empty", "--weights", weights)
    assert code == 2 and "error:" in err and "Traceback" not in err


# -- photo terms in the query language ---------------------------------------------------------


def test_a_photo_term_enters_the_query(capsys, home, weights, photos, monkeypatch):
    """``search "2:a dog + ./p2.jpg - sand"``: the photo, described with ResNet-18, is a term
    of the weighted sum, as in the Python API; --add PHOTO is the same term."""
    monkeypatch.chdir(photos)
    describe = PhotoDescriber(weights).describe
    engine = Run.load(RUN).engine(load_dataset(home / "minicoco"))
    query = "2:a dog + ./p2.jpg - sand"
    expected = [r.image_id for r in engine.search(query, k=6, describe=describe)]
    without_photo = [r.image_id for r in engine.search("2:a dog - sand", k=6)]
    assert expected != without_photo  # the photo moves the query
    found = run_json(capsys, "search", query, "--weights", weights, "-k", 6)
    assert [r["image_id"] for r in found["results"]] == expected
    assert found["ignored_words"] == []
    found = run_json(capsys, "search", "2:a dog - sand", "--add", photos / "p2.jpg",
                     "--weights", weights, "-k", 6)  # fmt: skip
    assert [r["image_id"] for r in found["results"]] == expected
    # similar: an image moved by a photo term
    image = expected[0]
    q = engine.query_vector([(1.0, photos / "p3.jpg")], image_id=image, describe=describe)
    similar = run_json(capsys, "similar", image, "--add", "./p3.jpg", "--weights", weights,
                       "-k", 4)  # fmt: skip
    assert [r["image_id"] for r in similar["results"]] == [
        r.image_id for r in engine.search_vector(q, 4, exclude=[image])
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "a dog + ./missing.jpg"], "the photo term './missing.jpg': no such file"),
        (["search", "a dog", "--subtract", "gone.png"], "the photo term 'gone.png': no such file"),
        (["search", "a dog - ./more"], "the photo term './more' is a folder, expected a photo"),
        (["rank", "a dog + ./missing.jpg", "1"], "the photo term './missing.jpg': no such file"),
    ],
)
def test_a_photo_term_that_is_no_file_is_an_error_naming_it(
    capsys, fresh_home, photos, monkeypatch, argv, message
):
    monkeypatch.chdir(photos)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert f"error: {message}" in err and "data:" not in err  # said before any data loads


def test_a_photo_term_without_weights_says_how_to_get_them(capsys, home, photos, monkeypatch):
    def offline(*args, **kwargs):
        raise requests.ConnectionError("no network")

    monkeypatch.setattr(requests, "get", offline)
    monkeypatch.chdir(photos)
    code, out, err = run(capsys, "search", "a dog + ./p1.jpg")
    assert code == 2 and out == ""
    assert "--weights" in err and "Traceback" not in err


# -- collections: migration, folders it cannot list, damaged files -------------------------------


def test_an_old_collection_archive_is_migrated_once_with_a_message(
    capsys, home, weights, photos
):
    """A collection an earlier version saved (``NAME.npz``) is moved into ``NAME.db`` on first
    use, said once; its rows answer as before and nothing is described again."""
    from capstone.common.archive import save_archive

    names = ["p0.jpg", "p1.jpg", "more/p4.png"]
    files = [photos / n for n in names]
    descriptors, _, _ = PhotoDescriber(weights).describe_paths(files, progress=False)
    model = Run.load(RUN)
    arrays = {
        "paths": np.array(names, dtype=str),
        "sizes": np.array([f.stat().st_size for f in files], dtype=np.int64),
        "mtimes": np.array([f.stat().st_mtime_ns for f in files], dtype=np.int64),
        "descriptors": descriptors,
        "embeddings": model.model.embed(descriptors),
    }
    meta = {"run": model.name, "model_sha256": model.weights_sha256,
            "folder": str(photos.resolve()), "n_photos": 3}  # fmt: skip
    legacy = home / "collections" / "olden.npz"
    save_archive(legacy, arrays, meta, kind="capstone.collection")
    code, out, err = run(capsys, "search", "a dog", "--collection", "olden", "--paths", "-k", 3)
    assert code == 0, err
    assert f"collection olden: moved 3 photos from {legacy} into {legacy.with_suffix('.db')}" in err
    assert sorted(out.split()) == sorted(str(f.resolve()) for f in files)
    code, out, err = run(capsys, "index", photos, "--name", "olden", "--weights", weights)
    assert code == 0 and "moved" not in err and legacy.is_file()
    assert "(2 added, 0 changed, 0 removed, 3 unchanged, 1 skipped)" in out


def test_index_warns_of_a_folder_it_cannot_list_and_keeps_its_photos(
    capsys, home, weights, photos, unlistable
):
    code, out, err = run(capsys, "index", photos, "--name", "locked", "--weights", weights)
    assert code == 0, err
    unlistable(photos / "more")
    code, out, err = run(capsys, "index", photos, "--name", "locked", "--weights", weights)
    assert code == 0, err
    assert (f"warning: cannot list {photos / 'more'} (Permission denied): its photos in the "
            "collection are kept as they were") in err  # fmt: skip
    assert "collection locked: 5 photos" in out
    assert "(0 added, 0 changed, 0 removed, 4 unchanged, 1 skipped, 1 kept in folders" in out


def test_a_damaged_collection_file_is_an_error_naming_it(capsys, home):
    broken = home / "collections" / "broken.db"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"these bytes are no database" * 100)
    code, out, err = run(capsys, "search", "a dog", "--collection", "broken")
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"error: {broken}: not a collection this version can read" in err
