"""Tests for `capstone.data.minicoco.scenes`: the sidecar is the truth behind the descriptors,
and the map from scenes to descriptors is fixed and nonlinear."""

import json
import pickle

import numpy as np
import pytest

from capstone.data import minicoco
from capstone.data.minicoco import scenes as scene_model
from capstone.data.minicoco.scenes import COUNT_LABELS, Scenes, scene_descriptors


def test_distractors_are_in_the_descriptor(generated):
    # A linear probe from descriptors ranks distractor categories in its top 5, though no
    # caption names them (test_captions.py).
    _, _, features, scenes = generated
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


def _scenes_of(records: list[dict], *, distractors: bool = True):
    """The `Scenes` of sidecar records (without the distractors if told)."""
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
            count[i, j] = COUNT_LABELS.index(obj["count"])
            if obj["colour"] is not None:
                colour[i, j] = minicoco.COLOURS.index(obj["colour"])
            present[i, j] = True
    scene = np.array([minicoco.SCENES.index(r["scene"]) for r in records])
    return Scenes(scene, category, count, colour, present)


@pytest.fixture(scope="module")
def noiseless(generated):
    """(records with a descriptor, their file descriptors, the noiseless descriptors of their
    scenes with and without the distractors)."""
    _, _, features, scenes = generated
    records = [r for r in scenes["images"] if r["has_descriptor"]]
    X = np.concatenate([features[r["image_id"]] for r in records])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scene_model, "_LATENT_NOISE", 0.0)
        full = scene_descriptors(_scenes_of(records), np.random.default_rng(0))
        bare = scene_descriptors(_scenes_of(records, distractors=False), np.random.default_rng(0))
    return records, X, full, bare


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
            w, k = scene_model._SLOT_WEIGHTS[j], COUNT_LABELS.index(obj["count"])
            F[i, offsets[1] + minicoco.CATEGORIES.index(obj["category"])] += (
                w * scene_model._COUNT_GAIN[k]
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
        scenes = Scenes(scene, category, np.zeros((n, 5), np.int64), np.full((n, 5), -1), present)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(scene_model, "_LATENT_NOISE", 0.0)
            return scene_descriptors(scenes, np.random.default_rng(0)).astype(np.float64)

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
