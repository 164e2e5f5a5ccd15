"""Tests for `capstone.data.minicoco`: formats, seeding, captions vs scenes, the descriptor map."""

import json
import pickle
import re

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from capstone.data import minicoco
from capstone.data.coco import CocoData
from capstone.data.minicoco import generator
from capstone.text.tokens import tokenize

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


# ---------------------------------------------------------------------------------------------
# The sidecar is the truth behind the descriptors
# ---------------------------------------------------------------------------------------------

_COUNT_LABELS = (1, 2, 3, "several")


def _scenes_of(records: list[dict], *, distractors: bool = True):
    """The internal `_Scenes` of sidecar records (without the distractors if told)."""
    n = len(records)
    category = np.zeros((n, 5), dtype=np.int64)
    count = np.zeros((n, 5), dtype=np.int64)
    colour = np.full((n, 5), -1, dtype=np.int64)
    present = np.zeros((n, 5), dtype=bool)
    for i, r in enumerate(records):
        slots = list(enumerate(r["objects"]))
        if distractors:
            slots += [(3 + k, d) for k, d in enumerate(r["distractors"])]
        for j, obj in slots:
            category[i, j] = minicoco.CATEGORIES.index(obj["category"])
            count[i, j] = _COUNT_LABELS.index(obj["count"])
            if obj["colour"] is not None:
                colour[i, j] = minicoco.COLOURS.index(obj["colour"])
            present[i, j] = True
    scene = np.array([minicoco.SCENES.index(r["scene"]) for r in records])
    return generator._Scenes(scene, category, count, colour, present)


@pytest.fixture(scope="module")
def noiseless(generated):
    """(records with a descriptor, their file descriptors, the noiseless descriptors of their
    scenes with and without the distractors)."""
    _, _, features, scenes = generated
    records = [r for r in scenes["images"] if r["has_descriptor"]]
    X = np.concatenate([features[r["image_id"]] for r in records])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(generator, "_LATENT_NOISE", 0.0)
        full = generator._descriptors(_scenes_of(records), np.random.default_rng(0))
        bare = generator._descriptors(
            _scenes_of(records, distractors=False), np.random.default_rng(0)
        )
    return records, X, full, bare


def test_features_are_keyed_by_int_ids_with_one_row_each(generated):
    _, _, features, _ = generated
    assert all(type(k) is int for k in features)
    assert all(v.shape == (1, 512) and v.dtype == np.float32 for v in features.values())
    stacked = np.concatenate(list(features.values()))
    assert len(np.unique(stacked, axis=0)) == len(features)  # no two images alike


def test_descriptors_are_the_noisy_map_of_the_recorded_scene(noiseless):
    _, X, full, _ = noiseless
    error = np.linalg.norm(X - full, axis=1) / np.linalg.norm(X, axis=1)
    assert np.median(error) < 0.3  # 0.18 at seed 3: latent noise only
    # Against the noiseless descriptor of another image's scene, far worse.
    shuffled = np.linalg.norm(X - np.roll(full, 1, axis=0), axis=1) / np.linalg.norm(X, axis=1)
    assert np.median(shuffled) > 2 * np.median(error)


def test_descriptors_encode_the_distractors(noiseless):
    records, X, full, bare = noiseless
    has = np.array([bool(r["distractors"]) for r in records])
    assert 0.3 < has.mean() < 0.8
    np.testing.assert_array_equal(full[~has], bare[~has])
    changed = np.linalg.norm(full - bare, axis=1)[has] / np.linalg.norm(full[has], axis=1)
    assert changed.min() > 0.05
    # The file's descriptor is nearer the scene with its distractors than without, always.
    nearer = np.linalg.norm(X - full, axis=1) < np.linalg.norm(X - bare, axis=1)
    assert nearer[has].mean() > 0.95  # 1.0 at seed 3


def _linear_features(records: list[dict]) -> np.ndarray:
    """Features of which the latent z is exactly a linear function (see the module docstring):
    scene one-hot, and per object (weight w_j) w_j g[k] onehot(c), w_j onehot(k),
    w_j onehot(colour); then a constant."""
    n_scenes, n_categories = len(minicoco.SCENES), len(minicoco.CATEGORIES)
    offsets = np.cumsum([0, n_scenes, n_categories, 4, len(minicoco.COLOURS), 1])
    F = np.zeros((len(records), offsets[-1]))
    F[:, -1] = 1.0
    for i, r in enumerate(records):
        F[i, minicoco.SCENES.index(r["scene"])] = 1.0
        slots = list(enumerate(r["objects"])) + [(3 + k, d) for k, d in enumerate(r["distractors"])]
        for j, obj in slots:
            w, k = generator._SLOT_WEIGHTS[j], _COUNT_LABELS.index(obj["count"])
            F[i, offsets[1] + minicoco.CATEGORIES.index(obj["category"])] += (
                w * generator._COUNT_GAIN[k]
            )
            F[i, offsets[2] + k] += w
            if obj["colour"] is not None:
                F[i, offsets[3] + minicoco.COLOURS.index(obj["colour"])] += w
    return F


def _r2_of_least_squares(F: np.ndarray, Y: np.ndarray) -> float:
    """R^2 of the least-squares fit of Y by the columns of F (projection on their span)."""
    # An orthonormal basis of the span from the small Gram matrix (F is rank-deficient: the
    # one-hots sum to the constant).
    eigenvalues, V = np.linalg.eigh(F.T @ F)
    keep = eigenvalues > 1e-10 * eigenvalues.max()
    U = F @ (V[:, keep] / np.sqrt(eigenvalues[keep]))
    residual = Y - U @ (U.T @ Y)
    return 1.0 - (residual**2).sum() / ((Y - Y.mean(axis=0)) ** 2).sum()


def test_no_linear_map_of_the_scene_gives_the_descriptors(noiseless):
    """z is a linear function of `_linear_features`, so were the map linear (or affine), least
    squares would fit the noiseless descriptors exactly, in sample; it leaves a large part."""
    records, _, full, _ = noiseless
    F = _linear_features(records)
    assert len(records) > 3 * F.shape[1]
    # The features are right: they fit an affine image of themselves perfectly...
    rng = np.random.default_rng(0)
    affine = (F @ rng.standard_normal((F.shape[1], 64))).astype(np.float32)
    assert _r2_of_least_squares(F, affine) > 0.9999
    # ... and the descriptors (every 4th channel, for speed) far from it (0.90 at seed 3).
    assert _r2_of_least_squares(F, full[:, ::4].astype(np.float64)) < 0.97


def test_descriptor_map_is_not_additive_in_objects():
    """f(s + a + b) - f(s + a) - f(s + b) + f(s) vanishes for an affine f; not here."""
    n, rng = 200, np.random.default_rng(1)
    scene = rng.integers(0, len(minicoco.SCENES), n)
    a = rng.integers(0, 80, n)
    b = (a + 1 + rng.integers(0, 79, n)) % 80
    category = np.zeros((n, 5), dtype=np.int64)
    category[:, 0], category[:, 3] = a, b  # a captioned object and a distractor

    def f(with_a: bool, with_b: bool) -> np.ndarray:
        present = np.zeros((n, 5), dtype=bool)
        present[:, 0], present[:, 3] = with_a, with_b
        scenes = generator._Scenes(
            scene, category, np.zeros((n, 5), np.int64), np.full((n, 5), -1), present
        )
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(generator, "_LATENT_NOISE", 0.0)
            return generator._descriptors(scenes, np.random.default_rng(0)).astype(np.float64)

    second = f(True, True) - f(True, False) - f(False, True) + f(False, False)
    first = f(True, False) - f(False, False)
    ratio = np.linalg.norm(second, axis=1) / np.linalg.norm(first, axis=1)
    assert np.median(ratio) > 0.1  # 0.30 with this draw


def test_descriptor_map_is_the_same_for_every_seed(tmp_path):
    """Scenes that two datasets share get nearly the same descriptor (up to latent noise)."""
    by_scene = []
    for seed in (1, 2):
        info = minicoco.generate(tmp_path / str(seed), 600, seed=seed)
        with open(info["features"], "rb") as f:
            table = pickle.load(f)
        records = json.loads(info["scenes"].read_text())["images"]
        by_scene.append({
            json.dumps([r["scene"], r["objects"], r["distractors"]]): table[r["image_id"]][0]
            for r in records
            if r["has_descriptor"]
        })  # fmt: skip
    common = sorted(set(by_scene[0]) & set(by_scene[1]))
    assert len(common) >= 5  # 12 with these seeds
    same = [np.linalg.norm(by_scene[0][k] - by_scene[1][k]) for k in common]
    others = list(by_scene[1].values())
    different = [np.linalg.norm(by_scene[0][k] - others[i]) for i, k in enumerate(common)]
    assert np.median(same) < 0.5 * np.median(different)  # 8.1 against 23.6


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
        assert any(_mentions(a["caption"], c) for c in objects), (a, objects)
    assert {i for i, r in records.items() if r["has_descriptor"]} == set(features)
    assert n - len(features) == info["n_without_descriptor"] == (0 if n < 200 else 1)
