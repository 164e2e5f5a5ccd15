"""Tests of capstone.embeddings.image.ImageEmbedder against NumPy references."""

from __future__ import annotations

import re

import hypothesis.extra.numpy as hnp
import mygrad as mg
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mygrad.nnet.initializers import glorot_normal

from capstone.common.archive import ArchiveError, save_archive
from capstone.common.vectors import normalize_rows
from capstone.embeddings.image import MODEL_KIND, ImageEmbedder, unit_rows
from capstone.search.database import DATABASE_KIND, ImageDatabase


def reference_forward(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """f(x) = x W / ||x W||, row by row, in float64."""
    y = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
    return y / np.sqrt((y**2).sum(axis=1, keepdims=True))


def descriptors(n: int, d_in: int = 512, seed: int = 0) -> np.ndarray:
    # ResNet descriptors are non-negative (after a ReLU): mimic that.
    return np.abs(np.random.default_rng(seed).normal(size=(n, d_in))).astype(np.float32)


@pytest.mark.parametrize(("d", "d_in", "n"), [(50, 512, 7), (200, 512, 1), (3, 10, 4)])
def test_output_shape_and_unit_norm(d, d_in, n):
    model = ImageEmbedder(d, d_in=d_in, seed=1)
    out = model(descriptors(n, d_in))
    assert isinstance(out, mg.Tensor)
    assert out.shape == (n, d)
    np.testing.assert_allclose(np.linalg.norm(out.data, axis=1), 1, rtol=1e-5)
    assert (model.d, model.d_in) == (d, d_in)
    assert model.weight.shape == (d_in, d)
    assert model.weight.dtype == np.float32


def test_no_bias():
    model = ImageEmbedder(50, seed=0)
    assert len(model.parameters) == 1
    assert model.parameters[0] is model.weight


@pytest.mark.parametrize("d", [50, 200])
def test_glorot_normal_statistics(d):
    w = ImageEmbedder(d, seed=3).weight.data.astype(np.float64)
    n = w.size
    std = np.sqrt(2 / (512 + d))
    assert abs(w.mean()) < 5 * std / np.sqrt(n)
    assert w.std() == pytest.approx(std, rel=5 * np.sqrt(1 / (2 * n)))
    # A normal distribution (kurtosis 3), not a uniform one of the same spread (kurtosis 1.8).
    kurtosis = ((w - w.mean()) ** 4).mean() / w.var() ** 2
    assert kurtosis == pytest.approx(3, abs=0.15)


def test_initialization_is_mygrads_glorot_normal():
    model = ImageEmbedder(50, seed=11)
    np.random.seed(11)  # noqa: NPY002
    expected = glorot_normal(512, 50)
    np.testing.assert_array_equal(model.weight.data, expected.data)


def test_seed_reproducible_and_distinct():
    a, b, c = ImageEmbedder(50, seed=5), ImageEmbedder(50, seed=5), ImageEmbedder(50, seed=6)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    assert a.weight is not b.weight


def test_seed_leaves_global_random_state_alone():
    np.random.seed(1234)  # noqa: NPY002
    expected = np.random.random(5)  # noqa: NPY002
    np.random.seed(1234)  # noqa: NPY002
    ImageEmbedder(50, seed=0)
    ImageEmbedder(20, d_in=8, seed=99)
    np.testing.assert_array_equal(np.random.random(5), expected)  # noqa: NPY002


def test_unseeded_models_differ():
    assert not np.array_equal(ImageEmbedder(8).weight.data, ImageEmbedder(8).weight.data)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    d=st.integers(1, 20),
    d_in=st.integers(1, 20),
    seed=st.integers(0, 2**31 - 1),
)
def test_forward_matches_numpy(n, d, d_in, seed):
    model = ImageEmbedder(d, d_in=d_in, seed=seed)
    x = descriptors(n, d_in, seed) + 0.1
    expected = reference_forward(x, model.weight.data)
    np.testing.assert_allclose(model(x).data, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.embed(x), expected, rtol=1e-4, atol=1e-6)


def test_embed_equals_tensor_forward():
    model = ImageEmbedder(50, seed=2)
    x = descriptors(30)
    out = model.embed(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (30, 50)
    np.testing.assert_allclose(out, model(x).data, rtol=1e-5, atol=1e-7)


def test_embed_builds_no_graph():
    model = ImageEmbedder(5, d_in=4, seed=0)
    model.embed(np.ones((2, 4)))
    assert model.weight.grad is None


@pytest.mark.parametrize("shape", [(512,), (3, 511), (2, 3, 512)])
def test_embed_bad_shape(shape):
    model = ImageEmbedder(10, seed=0)
    with pytest.raises(ValueError, match=re.escape(f"shape (N, 512), got {shape}")):
        model.embed(np.ones(shape))


def test_gradient_matches_central_differences():
    """d/dW of sum_n <f(x_n), c_n> (fixed caption vectors c) vs central differences, float64."""
    rng = np.random.default_rng(0)
    d_in, d, n = 6, 4, 5
    model = ImageEmbedder(d, d_in=d_in, seed=0)
    w = rng.normal(size=(d_in, d))
    model.dense.weight = mg.Tensor(w.copy())  # float64 weights for an accurate check
    x = rng.normal(size=(n, d_in))
    c = reference_forward(rng.normal(size=(n, d)), np.eye(d))  # unit caption vectors

    sims = mg.einsum("nd,nd->n", model(x), c)
    mg.sum(sims).backward()
    grad = model.weight.grad
    assert grad.shape == (d_in, d)

    def loss(w_):
        return float((reference_forward(x, w_) * c).sum())

    h = 1e-6
    for i, j in [(0, 0), (1, 3), (5, 2), (3, 1), (2, 2)]:
        step = np.zeros_like(w)
        step[i, j] = h
        numeric = (loss(w + step) - loss(w - step)) / (2 * h)
        assert grad[i, j] == pytest.approx(numeric, rel=1e-6, abs=1e-8)
    assert np.abs(grad).max() > 1e-3  # not trivially zero


# --- constructor arguments -------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "50", None, np.float64(3.0)])
def test_bad_d(bad):
    with pytest.raises(ValueError, match=re.escape(f"`d` must be a positive integer, got {bad!r}")):
        ImageEmbedder(bad)


@pytest.mark.parametrize("bad", [0, -512, 512.0, False])
def test_bad_d_in(bad):
    with pytest.raises(
        ValueError, match=re.escape(f"`d_in` must be a positive integer, got {bad!r}")
    ):
        ImageEmbedder(50, d_in=bad)


def test_numpy_integer_d():
    assert ImageEmbedder(np.int64(7), d_in=np.int32(3), seed=0).weight.shape == (3, 7)


# --- save / load -----------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    info = {"glove": "glove.6B.50d", "data_fingerprint": "0123456789abcdef", "epochs": 3}
    model = ImageEmbedder(50, seed=4, info=info)
    path = model.save(tmp_path / "model.npz")
    assert path == tmp_path / "model.npz"
    loaded = ImageEmbedder.load(path, d=50)
    assert loaded.weight.dtype == model.weight.dtype
    np.testing.assert_array_equal(loaded.weight.data, model.weight.data)
    assert loaded.info == info
    x = descriptors(4)
    np.testing.assert_array_equal(loaded.embed(x), model.embed(x))


def test_info_is_copied():
    info = {"a": 1}
    model = ImageEmbedder(3, seed=0, info=info)
    info["a"] = 2
    assert model.info == {"a": 1}


def test_load_leaves_global_random_state_alone(tmp_path):
    ImageEmbedder(5, d_in=3, seed=0).save(tmp_path / "m.npz")
    np.random.seed(7)  # noqa: NPY002
    expected = np.random.random(3)  # noqa: NPY002
    np.random.seed(7)  # noqa: NPY002
    ImageEmbedder.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(np.random.random(3), expected)  # noqa: NPY002


def test_load_wrong_d(tmp_path):
    ImageEmbedder(50, seed=0, info={"glove": "glove.6B.50d"}).save(tmp_path / "m.npz")
    with pytest.raises(
        ArchiveError,
        match=r"embeds into 50 dimensions, but the word vectors in use have 200 .*glove\.6B\.50d",
    ):
        ImageEmbedder.load(tmp_path / "m.npz", d=200)


@pytest.mark.parametrize(
    ("weight", "meta"),
    [
        (np.zeros((512, 40), np.float32), {"d": 50, "d_in": 512}),
        (np.zeros((50, 512), np.float32), {"d": 50, "d_in": 512}),
        (np.zeros(512 * 50, np.float32), {"d": 50, "d_in": 512}),
        (np.zeros((512, 50), np.float32), {}),
        (np.zeros((512, 50), np.int32), {"d": 50, "d_in": 512}),
        (np.zeros((512, 50), np.complex64), {"d": 50, "d_in": 512}),
    ],
)
def test_load_weight_of_wrong_shape_or_dtype(tmp_path, weight, meta):
    path = tmp_path / "m.npz"
    save_archive(path, {"weight": weight}, meta, kind=MODEL_KIND)
    with pytest.raises(
        ArchiveError, match=re.escape(f"{path}: weight has shape {weight.shape} and dtype")
    ):
        ImageEmbedder.load(path)


def test_load_without_weight(tmp_path):
    path = tmp_path / "m.npz"
    save_archive(path, {"w": np.zeros((512, 50), np.float32)}, {"d": 50}, kind=MODEL_KIND)
    with pytest.raises(ArchiveError, match=r"missing array.*weight"):
        ImageEmbedder.load(path)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.95])
def test_load_corrupt_file(tmp_path, fraction):
    path = ImageEmbedder(20, seed=0).save(tmp_path / "m.npz")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        ImageEmbedder.load(path)


def test_load_database_file_as_model(tmp_path):
    path = ImageDatabase([1, 2], np.eye(2)).save(tmp_path / "db.npz")
    with pytest.raises(ArchiveError, match=f"holds '{DATABASE_KIND}', expected '{MODEL_KIND}'"):
        ImageEmbedder.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        ImageEmbedder.load(tmp_path / "nope.npz")


def test_save_over_existing_file(tmp_path):
    path = ImageEmbedder(10, seed=0).save(tmp_path / "m.npz")
    before = path.read_bytes()
    other = ImageEmbedder(10, seed=1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        other.save(path)
    assert path.read_bytes() == before
    other.save(path, overwrite=True)
    np.testing.assert_array_equal(ImageEmbedder.load(path).weight.data, other.weight.data)


@settings(deadline=None, max_examples=50)
@given(
    x=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
        elements=st.floats(-10, 10).filter(lambda v: abs(v) > 1e-3),
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_unit_rows_matches_its_composition(x, seed):
    # The fused operation against MyGrad's own autodiff of x / sqrt(sum(x * x)).
    upstream = np.random.default_rng(seed).standard_normal(x.shape)
    fused, composed = mg.tensor(x), mg.tensor(x)
    out = unit_rows(fused)
    reference = composed / mg.sqrt(mg.sum(composed * composed, axis=1, keepdims=True))
    np.testing.assert_allclose(out.data, reference.data, rtol=1e-12)
    (out * upstream).sum().backward()
    (reference * upstream).sum().backward()
    np.testing.assert_allclose(fused.grad, composed.grad, rtol=1e-9, atol=1e-12)


# --- the learned text map ---------------------------------------------------------------------


def test_without_text_map_text_embeddings_pass_through():
    model = ImageEmbedder(4, d_in=3, seed=0)
    c = normalize_rows(np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32))
    assert model.text_map is None and len(model.parameters) == 1
    np.testing.assert_array_equal(model.embed_text(c), c)
    assert model.text(c) is c


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 20), d=st.integers(1, 60))
def test_text_map_at_identity_reproduces_the_course_embedding(seed, n, d):
    # unit(c I) = c to float32 rounding, so every ranking is the course's. Renormalizing divides
    # by a float32 norm of d squares, off by at most ~d/2 eps (the naive summation bound), and
    # |c_i| <= 1: hence atol d eps (not a fixed count of ulps: Hypothesis found 3 at d = 18).
    rng = np.random.default_rng(seed)
    c = normalize_rows(rng.normal(size=(n, d)).astype(np.float32))
    model = ImageEmbedder(d, d_in=3, seed=0, text_map=True)
    np.testing.assert_array_equal(model.text_map.data, np.eye(d, dtype=np.float32))
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(model.embed_text(c), c, rtol=0, atol=d * eps)
    images = normalize_rows(rng.normal(size=(30, d)).astype(np.float32))
    np.testing.assert_array_equal(
        np.argsort(-(model.embed_text(c) @ images.T), axis=1, kind="stable"),
        np.argsort(-(c @ images.T), axis=1, kind="stable"),
    )


def test_text_map_forward_matches_numpy_and_embed_text():
    rng = np.random.default_rng(1)
    model = ImageEmbedder(6, d_in=3, seed=0, text_map=True)
    model.text_map.data[...] = rng.normal(size=(6, 6))
    c = normalize_rows(rng.normal(size=(4, 6)).astype(np.float32))
    expected = c @ model.text_map.data
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(model.text(c).data, expected, rtol=1e-5)
    np.testing.assert_allclose(model.embed_text(c), expected, rtol=1e-5)
    np.testing.assert_allclose(model.embed_text(c[0]), expected[0], rtol=1e-5)  # one vector
    assert [p.shape for p in model.parameters] == [(3, 6), (6, 6)]
    with pytest.raises(
        ValueError, match=r"text vectors must have shape \(\.\.\., 6\), got \(4, 5\)"
    ):
        model.embed_text(np.ones((4, 5)))


def test_text_map_save_load_round_trip(tmp_path):
    model = ImageEmbedder(5, d_in=3, seed=2, text_map=True)
    model.text_map.data[...] = np.random.default_rng(0).normal(size=(5, 5))
    loaded = ImageEmbedder.load(model.save(tmp_path / "m.npz"), d=5)
    np.testing.assert_array_equal(loaded.text_map.data, model.text_map.data)
    np.testing.assert_array_equal(loaded.weight.data, model.weight.data)
    assert (
        ImageEmbedder.load(ImageEmbedder(5, d_in=3).save(tmp_path / "plain.npz")).text_map is None
    )


def test_load_text_map_of_wrong_shape(tmp_path):
    save_archive(
        tmp_path / "m.npz",
        {"weight": np.zeros((3, 5), np.float32), "text_map": np.eye(4, dtype=np.float32)},
        {"d": 5, "d_in": 3},
        kind=MODEL_KIND,
    )
    with pytest.raises(ArchiveError, match=r"text_map has shape \(4, 4\).*expected \(5, 5\)"):
        ImageEmbedder.load(tmp_path / "m.npz")


# --- weights that cannot embed anything, zero descriptors ----------------------------------------


def test_unit_rows_keeps_a_zero_row_zero_with_zero_gradient():
    x = mg.tensor(np.array([[3.0, 4.0], [0.0, 0.0]]))
    u = unit_rows(x)
    np.testing.assert_array_equal(u.data, [[0.6, 0.8], [0.0, 0.0]])
    (u * mg.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert np.isfinite(x.grad).all()
    np.testing.assert_array_equal(x.grad[1], [0.0, 0.0])


@pytest.mark.parametrize(
    ("poison", "message"),
    [
        (lambda w: w.__setitem__((0, 0), np.nan), r"its weight holds NaN or infinity"),
        (lambda w: w.__setitem__((1, 2), np.inf), r"its weight holds NaN or infinity"),
        (lambda w: w.__setitem__(Ellipsis, 0), r"its weight is all zero"),
    ],
)
def test_weights_that_cannot_embed_are_neither_saved_nor_loaded(tmp_path, poison, message):
    model = ImageEmbedder(4, d_in=3, seed=0)
    poison(model.weight.data)
    with pytest.raises(ValueError, match=rf"refusing to save .*m\.npz: {message}"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
    save_archive(
        tmp_path / "m.npz", {"weight": model.weight.data}, {"d": 4, "d_in": 3}, kind=MODEL_KIND
    )
    with pytest.raises(ArchiveError, match=rf"m\.npz: {message}"):
        ImageEmbedder.load(tmp_path / "m.npz")


def test_a_non_finite_text_map_is_refused(tmp_path):
    model = ImageEmbedder(4, d_in=3, seed=0, text_map=True)
    model.text_map.data[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"its text_map holds NaN or infinity"):
        model.save(tmp_path / "m.npz")
