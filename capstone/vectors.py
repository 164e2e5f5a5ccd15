"""Small vector operations shared by training, evaluation and search."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_rows", "top_k"]


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """``x / ||x||`` along the last axis; a zero row stays zero (instead of NaN).

    Examples
    --------
    >>> normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores along the last axis, best first.

    Equal scores are ordered by index, so the result equals
    ``np.argsort(-scores, kind="stable")[..., :k]``, in O(n) rather than O(n log n): a partition
    finds the k-th largest score, then only the k winners are sorted.

    Parameters
    ----------
    scores : numpy.ndarray, shape (..., n)
    k : int
        A positive integer; clipped to n.

    Returns
    -------
    numpy.ndarray, shape (..., min(k, n))

    Examples
    --------
    >>> top_k(np.array([0.1, 0.9, 0.5, 0.9]), 3).tolist()
    [1, 3, 2]
    """
    n = scores.shape[-1]
    k = min(k, n)
    kth = -np.partition(-scores, k - 1, axis=-1)[..., k - 1 : k]
    above, at = scores > kth, scores == kth
    # Of the scores tied with the k-th, keep the lowest indices, as a stable sort would.
    fill = k - np.count_nonzero(above, axis=-1, keepdims=True)
    chosen = above | (at & (np.cumsum(at, axis=-1) <= fill))
    best = np.nonzero(chosen)[-1].reshape(*scores.shape[:-1], k)
    order = np.argsort(-np.take_along_axis(scores, best, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(best, order, axis=-1)
