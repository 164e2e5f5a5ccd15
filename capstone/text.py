"""Text side: tokenize, IDF over the captions, and IDF-weighted GloVe embeddings.

For a text with tokens t_1 ... t_n (lowercased, punctuation removed, split on whitespace)

    IDF(t)  = log10(N / n_t)                  N captions, n_t of them containing t
    e(text) = sum_i IDF(t_i) * glove[t_i]     a token without IDF or GloVe vector adds nothing
    embed   = e / ||e||

Everything works on whole batches: all captions are joined into one string, lowercased,
stripped and split once, and tokens become integer ids through one dict lookup each. The ids
make one sparse (texts, vocabulary) count matrix C: the IDF counts its nonzero columns, and
the embeddings are the product ``C @ T`` with the (vocabulary, d) table T of IDF-weighted
vectors. There is no Python loop over captions.
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import scipy.sparse

from capstone.course_math import tokenize
from capstone.glove import WordVectors
from capstone.vectors import normalize_rows

__all__ = ["IDF", "TextEmbedder", "TokenBatch", "tokenize", "tokenize_batch"]

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
        is_boundary = ids == index[_BOUNDARY] if len(texts) > 1 else np.zeros(len(ids), bool)
        counts = np.bincount(np.cumsum(is_boundary)[~is_boundary], minlength=len(texts))
        ids = ids[~is_boundary]
    return ids, counts


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
        return cls._from_counts(batch.words, batch.counts())

    @classmethod
    def _from_counts(cls, words: list[str], counts: scipy.sparse.csr_matrix) -> IDF:
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
        embedder = cls(IDF._from_counts(batch.words, counts), glove)
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
