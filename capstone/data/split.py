"""The image-level split: images, not captions, go 4/5 to training and 1/5 to validation.

Splitting images keeps every validation image unseen in training, even through another of its
captions. Training draws its triples from the training side (`capstone.training.triples`);
evaluation and search use the validation side.
"""

from __future__ import annotations

import numpy as np

from capstone.common.checks import in_range

__all__ = ["split_images"]


def split_images(
    n_images: int, *, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split image indices 0..n_images-1 at random into training and validation sets.

    Returns
    -------
    train, val : numpy.ndarray
        Sorted int64 image indices; ``len(val) = round(val_fraction * n_images)``.

    Examples
    --------
    >>> train, val = split_images(10, seed=0)
    >>> len(train), len(val), sorted([*train, *val]) == list(range(10))
    (8, 2, True)
    """
    in_range("val_fraction", val_fraction, 0, 1)
    n_val = round(val_fraction * n_images)
    if n_images < 2 or not 0 < n_val < n_images:
        raise ValueError(
            f"cannot split `n_images`={n_images} with val_fraction={val_fraction}: "
            "both sides need at least one image"
        )
    order = np.random.default_rng(seed).permutation(n_images)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
