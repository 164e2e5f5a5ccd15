"""Tests for `capstone.minicoco`: real formats, seeding, captions vs scenes, the descriptor map."""

import json
import pickle
import re

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from capstone import minicoco
from capstone.coco import CocoData
from capstone.text import tokenize

N_IMAGES = 1_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("minicoco")
    info = minicoco.generate(folder, N_IMAGES, seed=3)
    captions = json.loads(info["captions"].read_text())
    with open(info["features"], "rb") as f:
        features = pickle.load(f)
    scenes = json.loads(info["scenes"].read_text())
    return info, captions, features, scenes


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
    assert scenes["seed"] == 3 and "generated" in scenes["description"]
    records = scenes["images"]
    assert [r["image_id"] for r in records] == [image["id"] for image in captions["images"]]
    assert all((r["image_id"] in features) == r["has_descriptor"] for r in records)
    for r in records:
        assert r["scene"] in minicoco.SCENES and 1 <= len(r["objects"]) <= 3
        assert len(r["distractors"]) <= 2
        for obj in r["objects"] + r["distractors"]:
            assert obj["category"] in minicoco.CATEGORIES
            assert obj["count"] in (1, 2, 3, "several")


def _mentions(caption: str, category: str) -> bool:
    text = " " + " ".join(tokenize(caption)) + " "
    return any(f" {' '.join(tokenize(form))} " in text for form in minicoco.mention_forms(category))


def test_every_caption_names_one_of_its_objects(generated):
    _, captions, _, scenes = generated
    objects = {r["image_id"]: [o["category"] for o in r["objects"]] for r in scenes["images"]}
    for a in captions["annotations"]:
        assert any(_mentions(a["caption"], c) for c in objects[a["image_id"]]), a


def test_captions_are_varied_english(generated):
    _, captions, _, _ = generated
    texts = [a["caption"] for a in captions["annotations"]]
    assert len(set(texts)) > 0.9 * len(texts)
    assert any(t.isupper() for t in texts) and any(t.endswith(".") for t in texts)
    assert any(t[:1].islower() for t in texts) and any(re.search(r"\d", t) for t in texts)
    vocabulary = {w for t in texts for w in tokenize(t)}
    assert len(vocabulary) > 400


def test_distractors_are_in_the_descriptor_not_the_captions(generated):
    # A linear probe from descriptors ranks distractor categories in its top 5, though no
    # caption mentions them.
    _info, captions, features, scenes = generated
    records = [r for r in scenes["images"] if r["has_descriptor"]]
    X = np.concatenate([features[r["image_id"]] for r in records]).astype(np.float64)
    n_cat = len(minicoco.CATEGORIES)
    Y = np.zeros((len(records), n_cat))
    for i, r in enumerate(records):
        for obj in r["objects"] + r["distractors"]:
            Y[i, minicoco.CATEGORIES.index(obj["category"])] = 1
    train, test = slice(0, 800), slice(800, None)
    Xc = np.c_[X, np.ones(len(X))]
    W = np.linalg.solve(Xc[train].T @ Xc[train] + 1.0 * np.eye(Xc.shape[1]), Xc[train].T @ Y[train])
    predicted = Xc[test] @ W
    hits = total = 0
    for p, r in zip(predicted, records[800:], strict=True):
        named = {o["category"] for o in r["objects"]}
        for d in r["distractors"]:
            if d["category"] in named:
                continue
            total += 1
            rank = np.argsort(-p).tolist().index(minicoco.CATEGORIES.index(d["category"]))
            hits += rank < 5
    assert total > 20 and hits / total > 0.8  # 94% at seed 3
    texts = {}
    for a in captions["annotations"]:
        texts.setdefault(a["image_id"], []).append(a["caption"])
    unnamed = [
        (d["category"], r["image_id"])
        for r in scenes["images"]
        for d in r["distractors"]
        if d["category"] not in {o["category"] for o in r["objects"]}
    ]
    mentioned = sum(any(_mentions(t, c) for t in texts[i]) for c, i in unnamed)
    assert mentioned < 0.1 * len(unnamed)  # only by accident (3% at seed 3: "a man" ...)


def test_the_descriptor_map_is_nonlinear():
    m = minicoco._descriptor_map()

    def f(z):
        return np.maximum(np.tanh(z @ m.A + m.a) @ m.B + m.b, 0) * m.gain

    z1, z2 = m.category_codes[0], m.category_codes[1]
    additive = f(z1) + f(z2) - f(np.zeros_like(z1))
    assert np.linalg.norm(f(z1 + z2) - additive) > 0.1 * np.linalg.norm(f(z1 + z2))


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, generated):
    info = generated[0]
    again = minicoco.generate(tmp_path / "again", N_IMAGES, seed=3)
    for key in ("captions", "features", "scenes"):
        assert again[key].read_bytes() == info[key].read_bytes()
    other = minicoco.generate(tmp_path / "other", N_IMAGES, seed=4)
    assert other["captions"].read_bytes() != info["captions"].read_bytes()
    assert other["features"].read_bytes() != info["features"].read_bytes()


def test_extra_captions_go_to_images(tmp_path):
    info = minicoco.generate(tmp_path, 20, n_captions=137, seed=0)
    annotations = json.loads(info["captions"].read_text())["annotations"]
    assert len(annotations) == info["n_captions"] == 137
    _, per_image = np.unique([a["image_id"] for a in annotations], return_counts=True)
    assert len(per_image) == 20 and per_image.min() >= 5


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_images": 9}, ValueError, "`n_images` must be at least 10"),
        ({"n_images": 10.5}, ValueError, "`n_images` must be an int"),
        ({"n_images": True}, ValueError, "`n_images` must be an int"),
        ({"n_images": 20, "n_captions": 99}, ValueError, "`n_captions` must be at least 100"),
        ({"n_images": 20, "seed": -1}, ValueError, "`seed` must be at least 0"),
        ({"n_images": 20, "seed": "0"}, TypeError, "`seed` must be an int"),
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


@settings(deadline=None, max_examples=80)
@given(category=st.sampled_from(minicoco.CATEGORIES))
def test_mention_forms_are_lowercase_words_with_plurals(category):
    forms = minicoco.mention_forms(category)
    assert forms and all(f == f.lower() and tokenize(f) for f in forms)
    assert len(forms) >= 2  # a singular and a plural at least


def test_mention_forms_unknown_category():
    with pytest.raises(ValueError, match="unknown category 'unicorn'"):
        minicoco.mention_forms("unicorn")


@settings(deadline=None, max_examples=10)
@given(n=st.integers(10, 60), seed=st.integers(0, 2**31))
def test_any_small_size_is_consistent(tmp_path_factory, n, seed):
    folder = tmp_path_factory.mktemp("small")
    info = minicoco.generate(folder, n, seed=seed)
    data = CocoData.load(info["captions"], info["features"])
    assert data.n_images + data.n_dropped_images == n
    assert data.n_dropped_images == info["n_without_descriptor"]
