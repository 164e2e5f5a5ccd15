"""Tests of `capstone.data.split`: the image-level split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.data.split import split_images


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(3, 2_000),
    val_fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_images_partitions_all_images(n, val_fraction, seed):
    n_val = round(val_fraction * n)
    if not 0 < n_val < n:
        with pytest.raises(ValueError, match=r"cannot split `n_images`="):
            split_images(n, val_fraction=val_fraction, seed=seed)
        return
    train, val = split_images(n, val_fraction=val_fraction, seed=seed)
    assert train.dtype == val.dtype == np.int64
    assert len(val) == n_val and len(train) == n - n_val
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)  # sorted, no repeats
    assert not np.intersect1d(train, val).size
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n))


@pytest.mark.parametrize("n", [3, 10, 11, 12, 99, 1_000, 82_612])
def test_split_images_default_is_one_fifth(n):
    train, val = split_images(n, seed=0)
    assert len(val) == round(0.2 * n)
    assert len(train) + len(val) == n


def test_split_images_is_seeded():
    a_train, a_val = split_images(500, seed=7)
    b_train, b_val = split_images(500, seed=7)
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(a_val, b_val)
    _, c_val = split_images(500, seed=8)
    assert not np.array_equal(a_val, c_val)


def test_split_images_is_random_not_a_block():
    # Not simply the last (or first) fifth: the validation images are spread over the range.
    _, val = split_images(1_000, seed=0)
    assert val.min() < 100 and val.max() > 900
    assert 0.4 < np.mean(val < 500) < 0.6


@pytest.mark.parametrize("val_fraction", [0, 1, -0.2, 1.5, float("nan"), float("inf")])
def test_split_images_rejects_bad_val_fraction(val_fraction):
    with pytest.raises(ValueError, match=r"`val_fraction` must lie in \(0, 1\)"):
        split_images(100, val_fraction=val_fraction)


@pytest.mark.parametrize(
    ("n", "val_fraction"), [(0, 0.2), (1, 0.2), (2, 0.2), (2, 0.24), (10, 0.01), (10, 0.99)]
)
def test_split_images_rejects_too_few_images(n, val_fraction):
    with pytest.raises(ValueError, match=rf"cannot split `n_images`={n} with val_fraction="):
        split_images(n, val_fraction=val_fraction)
