"""The course's math, plainly: one function per formula, loops allowed, nothing clever.

Read this module first. The rest of `capstone` computes the same things fast (whole batches,
sparse matrices, BLAS, sampled thresholds); each fast function says in its docstring which
function here it computes, and ``tests/test_course_math.py`` holds every pair equal.

>>> round(idf(["a dog", "a cat"])["dog"], 4)        # log10(2 / 1)
0.301
>>> round(margin_ranking_loss(0.9, 0.7, margin=0.25), 4)   # the true image wins by 0.2 < 0.25
0.05
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "caption_embedding",
    "idf",
    "image_embedding",
    "margin_ranking_loss",
    "rank_of_true_image",
    "recall_at_k",
    "similarity",
    "tokenize",
    "top_k",
    "triple_accuracy",
]


def tokenize(text: str) -> list[str]:
    """Lowercase, remove punctuation (``string.punctuation``), split on whitespace.

    >>> tokenize("A man's hot-dog, on the  GRILL!")
    ['a', 'mans', 'hotdog', 'on', 'the', 'grill']
    """
    return text.lower().translate(str.maketrans("", "", string.punctuation)).split()


def idf(captions: Sequence[str]) -> dict[str, float]:
    """Inverse document frequency of every caption word: ``IDF(t) = log10(N / n_t)``.

    N is the number of captions, n_t the number of captions holding t (at least once).
    """
    n_t: dict[str, int] = {}
    for caption in captions:
        for token in set(tokenize(caption)):
            n_t[token] = n_t.get(token, 0) + 1
    return {t: math.log10(len(captions) / n) for t, n in n_t.items()}


def caption_embedding(
    text: str, idf: Mapping[str, float], glove: Mapping[str, np.ndarray]
) -> np.ndarray:
    """``e = sum_t IDF(t) * glove[t]`` over the tokens of ``text``, then ``e / ||e||``.

    A token without IDF (in no caption) or without a GloVe vector adds nothing; a text of
    such tokens only embeds to zeros.
    """
    dim = len(next(iter(glove.values())))
    e = np.zeros(dim, dtype=np.float64)
    for token in tokenize(text):
        if token in idf and token in glove:
            e += idf[token] * np.asarray(glove[token], dtype=np.float64)
    norm = np.linalg.norm(e)
    return e / norm if norm > 0 else e


def image_embedding(descriptor: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``f(x) = x W / ||x W||``: (512,) descriptor, (512, d) weight -> (d,) unit vector."""
    y = np.asarray(descriptor, np.float64) @ np.asarray(weight, np.float64)
    norm = np.linalg.norm(y)
    return y / norm if norm > 0 else y


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """``<a, b>``: the cosine of two unit vectors."""
    return float(sum(float(x) * float(y) for x, y in zip(a, b, strict=True)))


def margin_ranking_loss(sim_true: float, sim_confusor: float, margin: float) -> float:
    """One triple's loss: ``max(0, margin - (sim_true - sim_confusor))``.

    ``mygrad.nnet.margin_ranking_loss(x1, x2, 1, margin)`` is its mean over a batch.
    """
    return max(0.0, margin - (sim_true - sim_confusor))


def triple_accuracy(sims_true: Sequence[float], sims_confusor: Sequence[float]) -> float:
    """Fraction of triples whose true image scores strictly higher than its confusor."""
    wins = [t > c for t, c in zip(sims_true, sims_confusor, strict=True)]
    return sum(wins) / len(wins)


def rank_of_true_image(scores: Sequence[float], true_index: int) -> float:
    """Rank of image ``true_index`` among ``scores`` (one caption's score for every image).

    ``1 + #(images scoring higher) + #(other images scoring the same) / 2``: ties count half,
    so that a model giving every image one score ranks at chance, not first.
    """
    own = scores[true_index]
    higher = sum(s > own for s in scores)
    tied = sum(s == own for i, s in enumerate(scores) if i != true_index)
    return 1 + higher + tied / 2


def recall_at_k(ranks: Sequence[float], k: int) -> float:
    """Recall@K: the fraction of queries whose true answer ranks K or better."""
    return sum(r <= k for r in ranks) / len(ranks)


def top_k(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` highest scores, best first; equal scores by lower index."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
