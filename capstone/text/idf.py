"""IDF over the captions: ``IDF(t) = log10(N / n_t)``, N captions, n_t of them holding t."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse

from capstone.text.tokens import TokenBatch, tokenize_batch

__all__ = ["IDF"]


class IDF:
    """Inverse document frequency of each caption word: ``IDF(t) = log10(N / n_t)``.

    The table `capstone.course_math.idf` computes word by word, from one sparse count matrix.

    Parameters
    ----------
    words : list[str], length V
    idf : numpy.ndarray, shape (V,)
        float64, ``idf[i]`` is the IDF of ``words[i]``.
    n_documents : int
        N, the number of captions the table was computed over.

    Examples
    --------
    >>> idf = IDF.fit(["a dog", "a cat", "a dog and a dog"])
    >>> round(idf["dog"], 4), idf["a"], idf["zebra"]
    (0.1761, 0.0, 0.0)
    """

    def __init__(self, words: list[str], idf: np.ndarray, n_documents: int):
        self.words = list(words)
        self.idf = np.asarray(idf, dtype=np.float64)
        self.n_documents = int(n_documents)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_tokens(cls, batch: TokenBatch) -> IDF:
        """IDF over the texts of a `TokenBatch` (each text is one document)."""
        return cls.from_counts(batch.words, batch.counts())

    @classmethod
    def from_counts(cls, words: list[str], counts: scipy.sparse.csr_matrix) -> IDF:
        """IDF from an (N, V) sparse count matrix of N captions over ``words``."""
        n_docs = counts.shape[0]
        if n_docs == 0:
            raise ValueError("IDF needs at least one caption")
        # One stored entry per (caption, word): a word counts once per caption it occurs in.
        n_t = np.bincount(counts.indices, minlength=len(words))
        return cls(words, np.log10(n_docs / n_t), n_docs)

    @classmethod
    def fit(cls, captions: Sequence[str]) -> IDF:
        """IDF over ``captions``."""
        return cls.from_tokens(tokenize_batch(captions))

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, word: str) -> float:
        """The IDF of ``word``; 0 for a word that occurs in no caption."""
        i = self.index.get(word)
        return 0.0 if i is None else float(self.idf[i])
