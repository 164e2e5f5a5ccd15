"""The image database: image ids and their unit embeddings, answering top-k queries.

Embeddings are one (N, d) float32 array, so a query is one matrix-vector product plus a
linear-time top-k (`capstone.common.vectors.top_k`); a batch of queries is one matrix product.
Below the index's threshold the array is kept transposed in memory, (d, N) C-contiguous: a
query then streams it once in the order BLAS reads fastest (1.7 ms rather than 2.8 ms at COCO
scale on 2 cores). From the threshold up, where the index answers, it is kept row by row: the
re-rank reads 1,000 whole rows a query, 1,000 places in memory rather than 1,000 x d
scattered ones (0.15 against 1.5 ms at COCO scale), and an exact query takes one dot product
per row (`capstone.common.vectors.scores_of_rows`).
Saved as a pickle-free ``.npz`` with JSON metadata (`capstone.common.archive`).

From `capstone.search.ann.THRESHOLD` images up, a query goes through an approximate index
(faiss) whose candidates are re-ranked with the float32 rows, so scores stay exact
(`capstone.search.ann`); ``exact=True`` scans every row instead. The index is built on the
first such query and saved beside the database's file (`save`, `load`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capstone.common.archive import ArchiveError, load_archive, save_archive
from capstone.common.checks import UnknownKey, count
from capstone.common.vectors import normalize_rows, scores_of_rows, top_k
from capstone.embeddings.image import ImageEmbedder
from capstone.search import ann
from capstone.search.ann import AnnIndex

__all__ = ["DATABASE_KIND", "ImageDatabase", "Match", "best_matches"]

DATABASE_KIND = "capstone.search.database"


@dataclass(frozen=True)
class Match:
    """One ranked result: an image id and its similarity score (cosine, in [-1, 1])."""

    image_id: int
    score: float


def best_matches(
    scores: np.ndarray, image_ids: np.ndarray, k: int, *, exclude_rows=()
) -> list[list[Match]]:
    """The ``k`` best of each row of ``scores`` as `Match` lists, best first, leaving out
    ``exclude_rows`` (columns); fewer when fewer columns remain.

    Parameters
    ----------
    scores : numpy.ndarray, shape (Q, N)
        Modified in place: excluded columns become -inf.
    image_ids : numpy.ndarray, shape (N,)
    k : int
    exclude_rows : sequence of int
        Distinct column indices.
    """
    exclude_rows = list(exclude_rows)
    if exclude_rows:
        scores[:, exclude_rows] = -np.inf
    n_best = min(k, scores.shape[1] - len(exclude_rows))
    if n_best <= 0:
        return [[] for _ in range(len(scores))]
    best = top_k(scores, n_best)
    best_scores = np.take_along_axis(scores, best, axis=1)
    return [
        [Match(int(i), float(s)) for i, s in zip(id_row, s_row, strict=True)]
        for id_row, s_row in zip(image_ids[best], best_scores, strict=True)
    ]


class ImageDatabase:
    """Image ids and their d-dimensional unit embeddings.

    Parameters
    ----------
    image_ids : array-like, shape (N,)
        Distinct integer ids.
    embeddings : array-like, shape (N, d)
        Rows are normalized to unit length on the way in.
    info : dict, optional
        Saved with the database (e.g. the model's GloVe source and data fingerprint).
    index_threshold : int, optional
        Images from which queries go through the approximate index (default
        `capstone.search.ann.THRESHOLD`, read when the database is made); the index is built
        on the first query that uses it.

    Examples
    --------
    >>> import numpy as np
    >>> db = ImageDatabase([7, 9], np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> db.query(np.array([0.2, 1.0]), k=1)  # doctest: +ELLIPSIS
    [Match(image_id=9, score=0.98...)]
    """

    def __init__(
        self, image_ids, embeddings, *, info: dict | None = None, index_threshold: int | None = None
    ):
        ids = np.asarray(image_ids)
        emb = np.asarray(embeddings, dtype=np.float32)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(
                f"`image_ids` must be a 1-D integer array, got {ids.dtype} {ids.shape}"
            )
        if emb.ndim != 2 or len(emb) != len(ids):
            raise ValueError(f"`embeddings` must have shape ({len(ids)}, d), got {emb.shape}")
        self.image_ids = ids.astype(np.int64)
        threshold = ann.THRESHOLD if index_threshold is None else index_threshold
        self.index_threshold = count("index_threshold", threshold)
        self.embeddings = normalize_rows(emb)  # its memory order: see `embeddings`
        self.info = dict(info or {})
        self._rows = {int(i): r for r, i in enumerate(self.image_ids)}
        if len(self._rows) != len(self.image_ids):
            raise ValueError("`image_ids` are not distinct")
        self.path = None  # the file saved or loaded: the index is kept beside it
        self._index: AnnIndex | bool | None = False  # False: not looked for yet

    @classmethod
    def build(cls, model: ImageEmbedder, image_ids, descriptors) -> ImageDatabase:
        """Embed (N, 512) ``descriptors`` of ``image_ids`` with ``model``."""
        return cls(image_ids, model.embed(descriptors), info=dict(model.info))

    @property
    def embeddings(self) -> np.ndarray:
        """The (N, d) float32 unit embeddings, row i for ``image_ids[i]`` (a read-only view)."""
        view = self._matrix.view()
        view.flags.writeable = False
        return view

    @embeddings.setter
    def embeddings(self, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=np.float32)
        # (N, d) in Fortran order is (d, N) C-contiguous: the exact scan's order (module doc)
        indexed = len(value) >= self.index_threshold
        self._matrix = np.ascontiguousarray(value) if indexed else np.asfortranarray(value)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __contains__(self, image_id) -> bool:
        return int(image_id) in self._rows

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def add(self, image_ids, embeddings) -> None:
        """Append images; an id already in the database is an error (nothing is replaced)."""
        new = ImageDatabase(image_ids, embeddings)
        if new.dim != self.dim and len(self):
            raise ValueError(f"`embeddings` have dimension {new.dim}, the database {self.dim}")
        taken = [int(i) for i in new.image_ids if int(i) in self._rows]
        if taken:
            raise ValueError(f"image ids already in the database: {taken[:10]}")
        start = len(self)
        # An empty database takes the dimension of what is added (concatenating would fail).
        embeddings = np.concatenate([self.embeddings, new.embeddings]) if start else new.embeddings
        self.image_ids = np.concatenate([self.image_ids, new.image_ids])
        self.embeddings = embeddings
        self._rows.update({int(i): start + r for r, i in enumerate(new.image_ids)})
        self._index = False  # other rows: the saved index is stale (its fingerprint says so)

    def index(self, *, progress: bool = True) -> AnnIndex | None:
        """The approximate index that answers queries, None below ``index_threshold`` images.

        Built on the first call (a message and progress bar on stderr when ``progress``) and
        saved beside the database's file, or loaded from there when built from these rows
        (`capstone.search.ann.AnnIndex.for_matrix`).
        """
        if self._index is False:
            self._index = AnnIndex.for_matrix(
                self.embeddings, self.path, threshold=self.index_threshold, progress=progress
            )
        return self._index

    def answering(self, *, exact: bool = False) -> str:
        """Which path answers a query, in words (front ends show it)."""
        index = None if exact else self.index()
        if index is None:
            return f"exact scan of {len(self):,} images"
        return f"approximate index {index.describe()} over {len(self):,} images"

    def row(self, image_id) -> int:
        """The row of one image; `UnknownKey` (a KeyError) for an id not in the database."""
        try:
            return self._rows[int(image_id)]
        except KeyError:
            raise UnknownKey(f"image id {image_id} is not in the database") from None

    def embedding(self, image_id) -> np.ndarray:
        """The (d,) embedding of one image; `UnknownKey` (a KeyError) for an unknown id."""
        return self.embeddings[self.row(image_id)]

    def _unit_queries(self, vectors: np.ndarray) -> np.ndarray:
        """(d,) or (Q, d) query vectors, checked and normalized (scores are then cosines, as
        `Match` promises, whatever the query's norm)."""
        q = np.asarray(vectors, dtype=np.float32)
        if q.shape[-1:] != (self.dim,) or q.ndim > 2:
            raise ValueError(
                f"query vectors must have shape (d,) or (Q, d), d={self.dim}: {q.shape}"
            )
        return normalize_rows(q)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Cosine similarity of (d,) or (Q, d) query vectors to every image: (N,) or (Q, N)."""
        q = self._unit_queries(vectors)
        return scores_of_rows(self._matrix, np.atleast_2d(q)).reshape(*q.shape[:-1], -1)

    def query(
        self, vector: np.ndarray, k: int = 10, *, exclude=(), exact: bool = False
    ) -> list[Match]:
        """The ``k`` images most similar to one (d,) query vector, best first.

        ``k`` larger than the database returns every image. ``exclude`` lists image ids to
        leave out (e.g. the query image itself). ``exact`` scans every image even when the
        approximate index would answer (`index`).
        """
        return self.query_batch(np.asarray(vector)[None], k, exclude=exclude, exact=exact)[0]

    def query_batch(
        self, vectors: np.ndarray, k: int = 10, *, exclude=(), exact: bool = False
    ) -> list[list[Match]]:
        """`query` for (Q, d) vectors at once: one matrix product and one batched top-k, or
        one batched index search where its settings say a batch is faster through it
        (`capstone.search.ann.Settings.batches`)."""
        k = count("k", k)
        q = self._unit_queries(vectors)
        if q.ndim != 2:
            raise ValueError(f"`vectors` must have shape (Q, {self.dim})")
        rows = sorted({self._rows[int(i)] for i in exclude if int(i) in self._rows})
        index = None if exact or k >= len(self) else self.index()
        if index is None or (len(q) > 1 and not index.settings.batches):
            scores = scores_of_rows(self._matrix, q)
            return best_matches(scores, self.image_ids, k, exclude_rows=rows)
        scores, found = index.search(q, k, exclude_rows=rows)
        return [
            [Match(int(i), float(s)) for i, s in zip(self.image_ids[r], s_row, strict=True)]
            for r, s_row in zip(found, scores, strict=True)
        ]

    def save(self, path: str | os.PathLike, *, overwrite: bool = False):
        """Save to ``path`` (``.npz``) atomically; an existing file needs ``overwrite=True``.

        The approximate index, once built, is saved beside it (`index`)."""
        saved = save_archive(
            path,
            {"image_ids": self.image_ids, "embeddings": self.embeddings},
            {**self.info, "n_images": len(self), "d": self.dim},
            kind=DATABASE_KIND,
            overwrite=overwrite,
        )
        self.path = saved
        return saved

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, d: int | None = None, index_threshold: int | None = None
    ) -> ImageDatabase:
        """Load a database saved by `save`; ``d`` checks the embedding dimension.

        Its approximate index (`index`) is read from beside ``path`` on the first query that
        needs it, and rebuilt there if it is stale or unreadable.

        Raises
        ------
        FileNotFoundError, capstone.common.archive.ArchiveError
            Missing, corrupt, truncated or mismatched file.
        """
        arrays, meta = load_archive(path, kind=DATABASE_KIND, required=("image_ids", "embeddings"))
        ids, emb = arrays["image_ids"], arrays["embeddings"]
        if emb.ndim != 2 or ids.shape != (emb.shape[0],) or len(ids) != meta.get("n_images"):
            raise ArchiveError(
                f"{path}: image_ids {ids.shape} and embeddings {emb.shape} do not match "
                f"n_images={meta.get('n_images')!r}"
            )
        if d is not None and emb.shape[1] != d:
            raise ArchiveError(f"{path}: embeddings have dimension {emb.shape[1]}, expected {d}")
        info = {
            k: v for k, v in meta.items() if k not in ("kind", "format_version", "n_images", "d")
        }
        db = cls(ids, emb, info=info, index_threshold=index_threshold)
        db.path = Path(path)
        # Saved rows are already unit length: keep them bit for bit (normalizing again would
        # change their last bits, so a loaded database would not equal the saved one).
        stored = np.asarray(emb, dtype=np.float32)
        if np.allclose(db.embeddings, stored, rtol=0, atol=1e-6):
            db.embeddings = stored
        return db
