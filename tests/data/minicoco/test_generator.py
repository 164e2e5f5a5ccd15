"""Tests for `capstone.data.minicoco.generator`: the files' formats, seeding, the arguments and
existing files."""

import json
import pickle
import re

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from minicoco_support import N_IMAGES, SEED, mentions

from capstone.data import minicoco
from capstone.data.coco import CocoData
from capstone.data.minicoco import generator


def test_captions_file_has_the_coco_format(generated):
    info, captions, _, _ = generated
    assert set(captions) == {"info", "images", "licenses", "annotations"}
    images = captions["images"]
    assert len(images) == N_IMAGES == info["n_images"]
    fields = {"license", "file_name", "coco_url", "height", "width", "date_captured"}
    assert all(fields | {"flickr_url", "id"} == set(image) for image in images)
    ids = [image["id"] for image in images]
    assert len(set(ids)) == N_IMAGES and all(isinstance(i, int) for i in ids)
    assert all(
        image["coco_url"].endswith(image["file_name"]) and ".invalid/" in image["coco_url"]
        for image in images
    )
    annotations = captions["annotations"]
    assert len(annotations) == info["n_captions"] == 5 * N_IMAGES
    assert all(set(a) == {"image_id", "id", "caption"} for a in annotations)
    assert len({a["id"] for a in annotations}) == len(annotations)
    per_image = np.unique([a["image_id"] for a in annotations], return_counts=True)
    assert set(per_image[0].tolist()) == set(ids) and per_image[1].min() >= 5


def test_features_file_has_the_course_format(generated):
    info, captions, features, _ = generated
    ids = {image["id"] for image in captions["images"]}
    assert set(features) <= ids
    assert len(ids) - len(features) == info["n_without_descriptor"] >= 1
    for value in list(features.values())[:50]:
        assert value.shape == (1, minicoco.DESCRIPTOR_DIM) and value.dtype == np.float32
    stacked = np.concatenate(list(features.values()))
    assert (stacked >= 0).all() and np.isfinite(stacked).all()
    assert stacked.std(axis=0).min() > 0  # every channel varies across images


def test_the_real_loader_reads_it(generated):
    info, _, features, _ = generated
    data = CocoData.load(info["captions"], info["features"])
    assert data.n_images == len(features)
    assert data.n_dropped_images == info["n_without_descriptor"]
    assert data.n_captions + data.n_dropped_captions == info["n_captions"]


def test_sidecar_describes_every_image(generated):
    _info, captions, features, scenes = generated
    assert scenes["seed"] == SEED and "generated" in scenes["description"]
    records = scenes["images"]
    assert [r["image_id"] for r in records] == [image["id"] for image in captions["images"]]
    assert all((r["image_id"] in features) == r["has_descriptor"] for r in records)
    for r in records:
        assert r["scene"] in minicoco.SCENES and 1 <= len(r["objects"]) <= 3
        assert len(r["distractors"]) <= 2
        for obj in r["objects"] + r["distractors"]:
            assert obj["category"] in minicoco.CATEGORIES
            assert obj["count"] in (1, 2, 3, "several")


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, generated):
    info = generated[0]
    again = minicoco.generate(tmp_path / "again", N_IMAGES, seed=SEED)
    for key in ("captions", "features", "scenes"):
        assert again[key].read_bytes() == info[key].read_bytes()
    other = minicoco.generate(tmp_path / "other", N_IMAGES, seed=SEED + 1)
    assert other["captions"].read_bytes() != info["captions"].read_bytes()
    assert other["features"].read_bytes() != info["features"].read_bytes()


def test_extra_captions_go_to_images(tmp_path):
    info = minicoco.generate(tmp_path, 20, n_captions=137, seed=0)
    annotations = json.loads(info["captions"].read_text())["annotations"]
    assert len(annotations) == info["n_captions"] == 137
    _, per_image = np.unique([a["image_id"] for a in annotations], return_counts=True)
    assert len(per_image) == 20 and per_image.min() >= 5


#: What `capstone.common.checks.count` says of a bad image count, caption count and seed.
BAD_N_IMAGES = "`n_images` must be a whole number from 10 to 200,000"
BAD_N_CAPTIONS = "`n_captions` must be a whole number from 100 to 1,000,000"
BAD_SEED = "`seed` must be a non-negative integer"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_images": 9}, ValueError, BAD_N_IMAGES),
        ({"n_images": 10.5}, ValueError, BAD_N_IMAGES),
        ({"n_images": True}, ValueError, BAD_N_IMAGES),
        ({"n_images": 20, "n_captions": 99}, ValueError, BAD_N_CAPTIONS),
        ({"n_images": 20, "seed": -1}, ValueError, BAD_SEED),
        ({"n_images": 20, "seed": "0"}, ValueError, BAD_SEED),
    ],
)
def test_bad_arguments_name_themselves(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        minicoco.generate(tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_existing_files_are_kept_unless_overwrite(tmp_path):
    (tmp_path / minicoco.CAPTIONS_FILE).write_text("my own captions")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        minicoco.generate(tmp_path, 10)
    assert (tmp_path / minicoco.CAPTIONS_FILE).read_text() == "my own captions"
    assert sorted(p.name for p in tmp_path.iterdir()) == [minicoco.CAPTIONS_FILE]
    info = minicoco.generate(tmp_path, 10, overwrite=True)
    assert json.loads(info["captions"].read_text())["images"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([minicoco.CAPTIONS_FILE, minicoco.FEATURES_FILE, minicoco.SCENES_FILE])


@settings(deadline=None, max_examples=10)
@given(n=st.integers(10, 60), seed=st.integers(0, 2**31))
def test_any_small_size_is_consistent(tmp_path_factory, n, seed):
    folder = tmp_path_factory.mktemp("small")
    info = minicoco.generate(folder, n, seed=seed)
    data = CocoData.load(info["captions"], info["features"])
    assert data.n_images + data.n_dropped_images == n
    assert data.n_dropped_images == info["n_without_descriptor"]


def test_features_are_keyed_by_int_ids_with_one_row_each(generated):
    _, _, features, _ = generated
    assert all(type(k) is int for k in features)
    assert all(v.shape == (1, 512) and v.dtype == np.float32 for v in features.values())
    stacked = np.concatenate(list(features.values()))
    assert len(np.unique(stacked, axis=0)) == len(features)  # no two images alike


# ---------------------------------------------------------------------------------------------
# Arguments and existing files
# ---------------------------------------------------------------------------------------------

FILES = (minicoco.CAPTIONS_FILE, minicoco.FEATURES_FILE, minicoco.SCENES_FILE)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_images": -5}, ValueError, BAD_N_IMAGES + " (the generator needs"),
        ({"n_images": 0}, ValueError, BAD_N_IMAGES),
        ({"n_images": "100"}, ValueError, BAD_N_IMAGES),
        ({"n_images": None}, ValueError, BAD_N_IMAGES),
        ({"n_images": 20, "n_captions": 100.0}, ValueError, BAD_N_CAPTIONS),
        ({"n_images": 20, "n_captions": -1}, ValueError, BAD_N_CAPTIONS),
        ({"n_images": 20, "seed": 1.0}, ValueError, BAD_SEED + ", got 1.0"),
        ({"n_images": 20, "seed": False}, ValueError, BAD_SEED + ", got False"),
        # sizes past the limit are refused before any array is allocated
        ({"n_images": 10**11}, ValueError, BAD_N_IMAGES + " (the generator"),
        ({"n_images": 200_001}, ValueError, BAD_N_IMAGES),
        (
            {"n_images": 20, "n_captions": 10**12},
            ValueError,
            BAD_N_CAPTIONS + " (COCO has 414,113), got 1,000,000,000,000",
        ),
    ],
)
def test_more_bad_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        minicoco.generate(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_numpy_ints_are_accepted_and_the_folder_created(tmp_path):
    out = tmp_path / "a" / "b"
    info = minicoco.generate(out, np.int64(12), n_captions=np.int32(61), seed=np.uint8(5))
    assert (info["n_images"], info["n_captions"], info["seed"]) == (12, 61, 5)
    assert all(type(info[k]) is int for k in ("n_images", "n_captions", "seed"))
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert json.loads(info["scenes"].read_text())["seed"] == 5


@pytest.mark.parametrize("name", FILES)
def test_any_existing_file_blocks_generation(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00precious\xff")
    with pytest.raises(FileExistsError, match=re.escape(name)):
        minicoco.generate(tmp_path, 10, seed=1)
    assert (tmp_path / name).read_bytes() == b"\x00precious\xff"
    assert [p.name for p in tmp_path.iterdir()] == [name]  # nothing else written, no temp


def test_overwrite_replaces_every_file(tmp_path):
    first = minicoco.generate(tmp_path, 30, seed=1)
    before = {k: first[k].read_bytes() for k in ("captions", "features", "scenes")}
    with pytest.raises(FileExistsError):
        minicoco.generate(tmp_path, 30, seed=2)
    assert {k: first[k].read_bytes() for k in before} == before
    second = minicoco.generate(tmp_path, 30, seed=2, overwrite=True)
    after = {k: second[k].read_bytes() for k in before}
    assert all(after[k] != before[k] for k in before)
    fresh = minicoco.generate(tmp_path / "fresh", 30, seed=2)
    assert after == {k: fresh[k].read_bytes() for k in before}  # as if written anew
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*FILES, "fresh"])


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """Each file is written whole or not at all: a failure while writing the descriptors
    leaves no temporary file and no part of the file."""

    def broken_dump(obj, f, protocol=None):
        f.write(b"half a pickle")
        raise OSError("disk full")

    monkeypatch.setattr(generator.pickle, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        minicoco.generate(tmp_path, 20, seed=0)
    names = [p.name for p in tmp_path.iterdir()]
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")], names
    assert minicoco.FEATURES_FILE not in names
    for name in names:  # whatever was written is complete
        assert json.loads((tmp_path / name).read_text())["images"]


@settings(deadline=None, max_examples=8)
@given(n=st.integers(10, 40), extra=st.integers(0, 30), seed=st.integers(0, 2**32 - 1))
def test_small_datasets_keep_their_promises(tmp_path_factory, n, extra, seed):
    """Any size and seed: the asked-for counts, >= 5 captions per image, each caption naming
    one of its image's objects, and the sidecar's flags matching the descriptor table."""
    info = minicoco.generate(tmp_path_factory.mktemp("prop"), n, n_captions=5 * n + extra,
                             seed=seed)  # fmt: skip
    captions = json.loads(info["captions"].read_text())
    records = {r["image_id"]: r for r in json.loads(info["scenes"].read_text())["images"]}
    with open(info["features"], "rb") as f:
        features = pickle.load(f)
    assert len(captions["images"]) == n and len(captions["annotations"]) == 5 * n + extra
    _, per_image = np.unique([a["image_id"] for a in captions["annotations"]], return_counts=True)
    assert len(per_image) == n and per_image.min() >= 5
    for a in captions["annotations"]:
        objects = [o["category"] for o in records[a["image_id"]]["objects"]]
        assert any(mentions(a["caption"], c) for c in objects), (a, objects)
    assert {i for i, r in records.items() if r["has_descriptor"]} == set(features)
    assert n - len(features) == info["n_without_descriptor"] == (0 if n < 200 else 1)
