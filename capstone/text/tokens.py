"""Tokens of many texts at once: `capstone.course_math.tokenize`, vectorized.

A token is a lowercased, punctuation-free, whitespace-separated word. All texts of a batch are
joined into one string, lowercased, stripped and split once, and tokens become integer ids
through one dict lookup each: there is no Python loop over texts. The ids make the sparse
(texts, vocabulary) count matrix that IDF (`capstone.text.idf`) and the embeddings
(`capstone.embeddings.text`) are computed from.
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from capstone.course_math import tokenize

__all__ = ["TokenBatch", "tokenize", "tokenize_batch"]

# Batches join texts with " \x00 " (lowercasing must see a non-letter between texts), then
# one translation strips punctuation and turns each "\x00" into "!": a token no text can
# produce (punctuation is gone from every real token), marking where each text ends.
_SEPARATOR = "\x00"
_BOUNDARY = "!"
_STRIP_AND_MARK = str.maketrans(_SEPARATOR, _BOUNDARY, string.punctuation)


@dataclass(frozen=True)
class TokenBatch:
    """The tokens of N texts, as integer ids.

    Attributes
    ----------
    words : list[str], length U
        The distinct tokens, in order of first appearance.
    ids : numpy.ndarray, shape (T,)
        int64; token ``j`` of the batch is ``words[ids[j]]``. Texts are contiguous, in order.
    offsets : numpy.ndarray, shape (N + 1,)
        int64; the tokens of text ``i`` are ``ids[offsets[i]:offsets[i + 1]]``.
    """

    words: list[str]
    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def counts(self, columns: np.ndarray | None = None) -> scipy.sparse.csr_matrix:
        """The (N, U) float32 sparse matrix of how often text i holds word j.

        ``columns`` (shape (U,), int) renumbers the words first: word j counts in column
        ``columns[j]``, and the matrix has ``columns.max() + 1`` columns.
        """
        ids = self.ids if columns is None else columns[self.ids]
        n_columns = len(self.words) if columns is None else int(columns.max(initial=-1)) + 1
        counts = scipy.sparse.csr_matrix(
            (np.ones(len(ids), np.float32), ids, self.offsets), shape=(len(self), n_columns)
        )
        counts.sum_duplicates()  # one entry per (text, word): what document frequency counts
        return counts


def _check_texts(texts: Sequence[str], name: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"`{name}` must be a sequence of strings, not a single string")
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"`{name}[{bad}]` is {type(texts[bad]).__name__}, not str")
    return texts


def tokenize_batch(texts: Sequence[str]) -> TokenBatch:
    """Tokenize many texts at once: `capstone.course_math.tokenize` of each, in one pass.

    Parameters
    ----------
    texts : Sequence[str], length N

    Returns
    -------
    TokenBatch

    Examples
    --------
    >>> b = tokenize_batch(["Two dogs.", "", "a DOG"])
    >>> b.words, b.ids.tolist(), b.offsets.tolist()
    (['two', 'dogs', 'a', 'dog'], [0, 1, 2, 3], [0, 2, 2, 4])
    """
    texts = _check_texts(texts, "texts")
    # Numbers words in order of first appearance: a missing word gets the id len(index) from
    # the default factory, in C, without a Python call per token.
    index: defaultdict[str, int] = defaultdict()
    index.default_factory = index.__len__
    ids, counts = [], []
    # Chunks bound the list of token strings (~60 bytes each) to a few MB instead of ~300 MB
    # for COCO's 4 million tokens; there is one iteration per chunk, not per text.
    for start in range(0, len(texts), _TEXTS_PER_CHUNK):
        chunk_ids, chunk_counts = _token_ids(texts[start : start + _TEXTS_PER_CHUNK], index)
        ids.append(chunk_ids)
        counts.append(chunk_counts)
    ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    boundary = index.pop(_BOUNDARY, None)
    if boundary is not None:
        ids -= ids > boundary  # close the gap the boundary leaves in the numbering
    offsets = np.concatenate([[0], *counts]).cumsum()
    return TokenBatch(list(index), ids, offsets.astype(np.int64))


_TEXTS_PER_CHUNK = 1 << 15


def _token_ids(texts: list[str], index: defaultdict) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of ``texts`` (``index`` gains their new words) and each text's token count."""
    joined = f" {_SEPARATOR} ".join(texts)
    if joined.count(_SEPARATOR) == max(len(texts) - 1, 0):
        tokens = joined.lower().translate(_STRIP_AND_MARK).split()
        counts = None  # read off the boundaries below
    else:
        # A text holds the separator itself: tokenize one by one (correct, merely slower).
        per_text = [tokenize(t) for t in texts]
        tokens = [tok for toks in per_text for tok in toks]
        counts = np.fromiter(map(len, per_text), dtype=np.int64, count=len(texts))
    ids = np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    if counts is None:
        # A single text has no boundary: looking it up numbers it anyway, past every id here,
        # and tokenize_batch pops it.
        is_boundary = ids == index[_BOUNDARY]
        counts = np.bincount(np.cumsum(is_boundary)[~is_boundary], minlength=len(texts))
        ids = ids[~is_boundary]
    return ids, counts
