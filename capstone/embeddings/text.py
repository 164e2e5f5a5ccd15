"""IDF-weighted GloVe embeddings of captions and queries, unit length.

For a text with tokens t_1 ... t_n (`capstone.text.tokens`) and IDF (`capstone.text.idf`)

    e(text) = sum_i IDF(t_i) * glove[t_i]     a token without IDF or GloVe vector adds nothing
    embed   = e / ||e||

for whole batches at once: the product ``C @ T`` of the sparse (texts, vocabulary) count matrix
C and the (vocabulary, d) table T of IDF-weighted vectors, then each row scaled to unit length.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import numpy as np
import scipy.sparse

from capstone.common.vectors import normalize_rows
from capstone.data.glove import WordVectors
from capstone.text.idf import IDF
from capstone.text.tokens import tokenize, tokenize_batch

__all__ = ["TextEmbedder"]


class TextEmbedder:
    """Embeds text as the unit-length, IDF-weighted sum of its words' GloVe vectors.

    `capstone.course_math.caption_embedding` for whole batches: a sparse (texts, words) count
    matrix times `table`, then each row scaled to unit length.

    Parameters
    ----------
    idf : IDF
        The caption IDF table.
    glove : WordVectors
        The word vectors (dimension d).

    Attributes
    ----------
    table : numpy.ndarray, shape (V + 1, d)
        float32, row i is ``IDF(words[i]) * glove[words[i]]`` (zero when the word has no vector);
        the last row is zero, for tokens that are not in the IDF table.
    """

    def __init__(self, idf: IDF, glove: WordVectors):
        self.idf = idf
        self.glove = glove
        vectors, self.in_glove = glove.lookup(idf.words)
        self.table = np.concatenate(
            [idf.idf.astype(np.float32)[:, None] * vectors, np.zeros((1, glove.dim), np.float32)]
        )

    @property
    def dim(self) -> int:
        """d, the embedding dimension."""
        return self.glove.dim

    @classmethod
    def fit(cls, captions: Sequence[str], glove: WordVectors) -> tuple[TextEmbedder, np.ndarray]:
        """Compute IDF over ``captions`` and embed them, tokenizing only once.

        Returns
        -------
        embedder : TextEmbedder
        embeddings : numpy.ndarray, shape (N, d)
            float32 unit rows (a zero row for a caption with no known word).
        """
        batch = tokenize_batch(captions)
        counts = batch.counts()
        embedder = cls(IDF.from_counts(batch.words, counts), glove)
        # The batch's word ids are the IDF table's own rows.
        return embedder, embedder._embed_counts(counts)

    def _embed_counts(self, counts: scipy.sparse.csr_matrix) -> np.ndarray:
        # sum_i IDF(t_i) glove[t_i] for all texts at once: C @ T (columns beyond C's are unused).
        sums = np.asarray(counts @ self.table[: counts.shape[1]])
        return normalize_rows(sums, inplace=True)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed many texts.

        Parameters
        ----------
        texts : Sequence[str], length N

        Returns
        -------
        numpy.ndarray, shape (N, d)
            float32 unit rows; a text none of whose words has both an IDF and a GloVe vector
            gets a zero row.
        """
        batch = tokenize_batch(texts)
        unknown = len(self.idf)
        to_table = np.fromiter(
            map(self.idf.index.get, batch.words, repeat(unknown)),
            dtype=np.int64,
            count=len(batch.words),
        )
        return self._embed_counts(batch.counts(to_table))

    def known_words(self, text: str) -> tuple[list[str], list[str]]:
        """Split the tokens of ``text`` into those that count and those that add nothing.

        A token adds nothing when it occurs in no caption (IDF 0), in every caption (IDF 0
        too), or has no GloVe vector: its row of `table` is zero.
        """
        tokens = tokenize(text)
        unknown = len(self.idf)
        weighs = self.table[[self.idf.index.get(t, unknown) for t in tokens]].any(axis=1)
        return (
            [t for t, w in zip(tokens, weighs, strict=True) if w],
            [t for t, w in zip(tokens, weighs, strict=True) if not w],
        )

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query, refusing text that would embed to nothing.

        Returns
        -------
        numpy.ndarray, shape (d,)
            float32, unit length.

        Raises
        ------
        TypeError
            If ``text`` is not a string.
        ValueError
            If ``text`` has no words, or none of its words has weight (an IDF above 0 and a
            GloVe vector): its embedding would be zero.
        """
        if not isinstance(text, str):
            raise TypeError(f"query must be a string, not {type(text).__name__}")
        if not tokenize(text):
            raise ValueError(f"query {text!r} has no words once punctuation is removed")
        vector = self.embed([text])[0]
        if not vector.any():
            raise ValueError(
                f"no word of query {text!r} carries weight (each occurs in no caption or in "
                "every caption, or has no GloVe vector), so it has no embedding; try other words"
            )
        return vector
