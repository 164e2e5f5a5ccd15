"""Tests for `capstone.common.vectors`: top_k vs a stable argsort, normalize_rows vs a loop."""

import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from capstone.common.vectors import (
    _partition_top_k,
    normalize_rows,
    row_norms,
    scores_of_rows,
    top_k,
)


def top_k_oracle(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores, axis=-1, kind="stable")[..., :k]


def normalize_rows_oracle(x: np.ndarray) -> np.ndarray:
    rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
    out = []
    for row in rows.tolist():
        norm = math.sqrt(sum(v * v for v in row))
        out.append([v / norm for v in row] if norm > 0 else [0.0] * len(row))
    return np.array(out, dtype=np.float64).reshape(x.shape)


# Few distinct values, so that most scores are tied with others.
tied_scores = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64]),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=12),
    elements=st.integers(-3, 3).map(float),
)

distinct_scores = hnp.arrays(
    dtype=np.float64,
    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=20),
    elements=st.floats(allow_nan=False),
    unique=True,
)


@settings(deadline=None, max_examples=150)
@given(scores=tied_scores, k=st.integers(1, 15))
def test_top_k_matches_stable_argsort_with_ties(scores: np.ndarray, k: int):
    got = top_k(scores, k)
    expected = top_k_oracle(scores, k)
    assert got.shape == (*scores.shape[:-1], min(k, scores.shape[-1]))
    np.testing.assert_array_equal(got, expected)


@settings(deadline=None, max_examples=60)
@given(scores=distinct_scores, data=st.data())
def test_top_k_matches_stable_argsort_on_arbitrary_floats(scores: np.ndarray, data):
    k = data.draw(st.integers(1, scores.shape[-1] + 3), label="k")
    np.testing.assert_array_equal(top_k(scores, k), top_k_oracle(scores, k))


@settings(deadline=None, max_examples=60)
@given(
    rows=st.sampled_from([(), (1,), (3,), (2, 2)]),
    n=st.integers(4 * 64, 20_000),
    k=st.integers(1, 40),
    levels=st.sampled_from([3, 50, None]),
    seed=st.integers(0, 2**32 - 1),
)
def test_top_k_on_long_rows_matches_stable_argsort(rows, n, k, levels, seed):
    # Long rows take the sampled-threshold path (n >= 4 * k * 64): few distinct levels make
    # ties across the threshold, None makes continuous scores.
    rng = np.random.default_rng(seed)
    shape = (*rows, n)
    scores = rng.standard_normal(shape) if levels is None else rng.integers(0, levels, shape) / 2
    np.testing.assert_array_equal(top_k(scores, k), top_k_oracle(scores, k))


@pytest.mark.parametrize("seed", [12, 16, 29, 38, 48, 94])
def test_top_k_when_the_sample_holds_every_best_score(seed):
    # the sampled threshold must be a lower bound on the k-th best score: here the row's best
    # scores all lie in the sample, so any threshold above the sample's k-th best leaves fewer
    # than k candidates (these seeds draw samples where a partition around the wrong index
    # gives such a threshold)
    rng = np.random.default_rng(seed)
    k, m = int(rng.integers(1, 30)), int(rng.integers(200, 2000))
    scores = np.full((2, 64 * m), -10.0)
    scores[:, ::64] = rng.standard_normal((2, m))
    np.testing.assert_array_equal(top_k(scores, k), top_k_oracle(scores, k))


@pytest.mark.parametrize("k", [1, 2, 7])
@pytest.mark.parametrize("levels", [3, None])
def test_both_paths_of_top_k_agree_on_long_rows(k, levels):
    # top_k sends long rows to the sampled threshold only: the full partition, its reference on
    # short rows, is checked on long ones here (k = 1 among them)
    rng = np.random.default_rng(k)
    shape = (3, 4 * 64 * k + 5)
    scores = rng.standard_normal(shape) if levels is None else rng.integers(0, levels, shape) / 2
    expected = top_k_oracle(scores, k)
    np.testing.assert_array_equal(_partition_top_k(scores, k), expected)
    np.testing.assert_array_equal(top_k(scores, k), expected)


@pytest.mark.parametrize(
    ("scores", "k", "expected"),
    [
        ([0.1, 0.9, 0.5, 0.9], 3, [1, 3, 2]),  # the docstring example: ties by index
        ([0.1, 0.9, 0.5, 0.9], 1, [1]),
        ([0.1, 0.9, 0.5, 0.9], 10, [1, 3, 2, 0]),  # k clipped to n
        ([2.0, 2.0, 2.0], 2, [0, 1]),
        ([-np.inf, 0.0, np.inf], 2, [2, 1]),
        ([[1.0, 3.0, 2.0], [3.0, 3.0, 1.0]], 2, [[1, 2], [0, 1]]),
    ],
)
def test_top_k_examples(scores, k, expected):
    assert top_k(np.array(scores), k).tolist() == expected


def test_top_k_does_not_modify_scores():
    scores = np.array([[0.5, 0.1, 0.5, 0.9]])
    before = scores.copy()
    top_k(scores, 2)
    np.testing.assert_array_equal(scores, before)


@settings(deadline=None, max_examples=100)
@given(
    x=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
        # eighths in [-125, 125]: exact in float32, no overflow, no underflow of x * x
        elements=st.integers(-1000, 1000).map(lambda i: i / 8),
    ),
    zero_rows=st.lists(st.integers(0, 100), max_size=3),
)
def test_normalize_rows_matches_loop(x: np.ndarray, zero_rows: list[int]):
    flat = x.reshape(-1, x.shape[-1])
    for r in zero_rows:
        flat[r % len(flat)] = 0  # x is C-contiguous, so this writes into x
    before = x.copy()
    got = normalize_rows(x)

    assert got.dtype == x.dtype
    assert got.shape == x.shape
    np.testing.assert_array_equal(x, before)  # input untouched
    assert np.isfinite(got).all()
    expected = normalize_rows_oracle(x)
    np.testing.assert_allclose(got, expected, rtol=1e-6 if x.dtype == np.float32 else 1e-12)
    zero = ~x.any(axis=-1)
    assert (got[zero] == 0).all()  # a zero row stays exactly zero, not NaN
    norms = np.linalg.norm(got.astype(np.float64), axis=-1)
    np.testing.assert_allclose(norms[~zero], 1.0, rtol=1e-6)


def test_normalize_rows_inplace_overwrites_and_returns_x():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]], dtype=np.float32)
    expected = normalize_rows(x)
    got = normalize_rows(x, inplace=True)
    assert got is x
    np.testing.assert_array_equal(x, expected)


def test_normalize_rows_example():
    assert normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist() == [[0.6, 0.8], [0.0, 0.0]]
    assert normalize_rows(np.array([0.0, -2.0])).tolist() == [0.0, -1.0]


def test_row_norms_of_huge_float32_rows_do_not_overflow():
    # squaring 3e30 overflows float32: those rows are scaled first, ordinary rows are not
    # (2, 2, 3): no axis but the last has the rows' length
    x = np.array(
        [[[3.0, 4.0, 0.0], [3e30, -4e30, 0.0]], [[0.0, 0.0, 0.0], [1e25, 0.0, 0.0]]],
        dtype=np.float32,
    )
    expected = np.linalg.norm(x.astype(np.float64), axis=-1, keepdims=True)
    norms = row_norms(x)
    assert norms.shape == (2, 2, 1)
    np.testing.assert_allclose(norms, expected, rtol=1e-6)
    np.testing.assert_allclose(normalize_rows(x)[0, 1], [0.6, -0.8, 0.0], rtol=1e-6)


def test_row_norms_of_a_row_holding_inf_is_inf():
    x = np.array([[np.inf, 1.0], [3e30, 4e30]], dtype=np.float32)
    norms = row_norms(x)
    assert norms[0, 0] == np.inf
    np.testing.assert_allclose(norms[1, 0], 5e30, rtol=1e-6)


@given(
    st.integers(1, 40), st.integers(1, 12), st.integers(1, 3), st.booleans(), st.integers(0, 99)
)
def test_scores_of_rows_is_the_matrix_product_in_either_memory_order(n, d, q, fortran, seed):
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n, d)).astype(np.float32)
    matrix = np.asfortranarray(matrix) if fortran else np.ascontiguousarray(matrix)
    queries = rng.normal(size=(q, d)).astype(np.float32)
    reference = queries.astype(np.float64) @ matrix.T.astype(np.float64)
    found = scores_of_rows(matrix, queries)
    assert found.shape == (q, n)
    np.testing.assert_allclose(found, reference, rtol=1e-4, atol=1e-4)
