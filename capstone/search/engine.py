"""The search engine: text, image, tag, word and combined queries over an image database.

Every query becomes one unit vector q in the caption embedding space and is answered by the
database's top-k over ``E q`` (E: image embeddings):

- text -> images: q = embed(text) (through the model's text map, when it learned one);
- image -> images: q = the image's embedding (semantic space), or its raw descriptor against
  all descriptors (descriptor space);
- combined, as rclip does: q = normalize(sum_i w_i v_i [+ image]) over the weighted terms of
  the query language (`capstone.search.terms`: ``"2:dog + ./pool.jpg - sand"``), v_i the unit
  embedding of a text or of a photo's ResNet-18 descriptor;
- image -> tags: the caption words whose GloVe vectors are nearest the image's embedding;
- word -> words: the caption words nearest a word's GloVe vector.

Image queries go through the database's approximate index above its threshold (scores stay
exact: `capstone.search.database`); ``exact=True`` scans every image instead.

Tag words come from the caption vocabulary, limited to words with a GloVe vector that occur in
at least ``min_count`` captions and are not stop words: real words that describe scenes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capstone.common.checks import UnknownKey, count, instance
from capstone.common.vectors import normalize_rows, row_norms, scores_of_rows, top_k
from capstone.dataset import Dataset
from capstone.embeddings.image import ImageEmbedder
from capstone.embeddings.text import TextEmbedder
from capstone.search.database import ImageDatabase, Match, best_matches
from capstone.search.terms import Term, format_terms, parse_terms

__all__ = [
    "Rank",
    "SearchEngine",
    "SearchResult",
    "ignored_words",
    "plus_minus",
    "query_vector",
    "terms_vector",
    "text_vector",
]

#: Describes one photo: a path -> its (1, 512) ResNet-18 descriptor (`PhotoDescriber.describe`).
Describe = Callable[[Path], np.ndarray]

# Function words that are near everything in GloVe space and describe no scene.
STOP_WORDS = frozenset(
    """a an the and or but of on in at to from by with without for into onto over under near
    next up down out off is are was were be been being has have had do does did this that these
    those there here it its they them their he she his her him we you i me my our your who what
    which while as than then so very some any all each other another one two three four five six
    several many much few lot lots group bunch couple top front back side just""".split()
)


def text_vector(model: ImageEmbedder, text: TextEmbedder, query: str) -> np.ndarray:
    """The unit (d,) embedding of a query text: its IDF-weighted GloVe sum through the model's
    text map (errors for empty or unknown text)."""
    return model.embed_text(text.embed_query(query))


def terms_vector(
    model: ImageEmbedder,
    text: TextEmbedder,
    terms: Sequence[Term],
    describe: Describe | None = None,
) -> np.ndarray:
    """``sum_i w_i * v_i`` for (w_i, term_i) terms, shape (d,), not unit.

    v_i is `text_vector` of a text term, or the model's unit embedding of ``describe(path)``
    for a photo term (a `~pathlib.Path`). The terms of `capstone.search.terms.parse_terms`
    (``"2:dog + beach - sand"``) or `plus_minus`; no terms give the zero vector.

    Raises
    ------
    ValueError
        For a photo term without ``describe`` (naming the term), or a text with no known word.
    """
    q = np.zeros(model.d, np.float32)
    for weight, term in terms:
        if isinstance(term, Path):
            if describe is None:
                raise ValueError(
                    f"the photo term '{term}' needs a photo describer: pass "
                    "describe=PhotoDescriber(weights).describe (capstone.photos.describer)"
                )
            v = model.embed(np.asarray(describe(term), np.float32).reshape(1, -1))[0]
        else:
            v = text_vector(model, text, term)
        q += np.float32(weight) * v
    return q


def query_vector(
    model: ImageEmbedder,
    text: TextEmbedder,
    terms: Sequence[Term],
    describe: Describe | None = None,
    *,
    image: np.ndarray | None = None,
) -> np.ndarray:
    """`terms_vector` plus an optional unit (d,) ``image`` embedding: the vector a query
    searches with, shape (d,), not unit.

    Raises
    ------
    ValueError
        When there is nothing to search: no term and no image, or terms that cancel out
        (``"dog - dog"``). Every front end says it in these words.
    """
    q = terms_vector(model, text, terms, describe)
    if image is not None:
        q = q + image
    if not terms and image is None:
        raise ValueError("the query is empty: give at least one term or image")
    if not np.any(q):
        raise ValueError(
            f"the terms of {format_terms(terms)!r} cancel out: nothing is left to search"
        )
    return q


def ignored_words(text: TextEmbedder, terms: Sequence[Term]) -> list[str]:
    """The words of a query's text terms that add nothing (IDF 0 or no GloVe vector): every
    front end says them above the results. Photo terms have no words."""
    return [w for _, t in terms if isinstance(t, str) for w in text.known_words(t)[1]]


def plus_minus(add: Sequence[str], subtract: Sequence[str] = ()) -> list[tuple[float, str]]:
    """Texts to add and to subtract as (weight, text) terms: weight 1 and -1.

    >>> plus_minus(["a dog"], ["sand"])
    [(1.0, 'a dog'), (-1.0, 'sand')]
    """
    return [(1.0, t) for t in add] + [(-1.0, t) for t in subtract]


@dataclass(frozen=True)
class SearchResult:
    """One image found: its id, score, ``coco_url`` and captions (as `display` shows them)."""

    image_id: int
    score: float
    url: str
    captions: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Rank:
    """Where one image ranks for a query (`SearchEngine.rank_of`)."""

    image_id: int
    rank: int
    score: float
    n_images: int
    in_database: bool


class SearchEngine:
    """Queries over a trained model, a dataset and an image database.

    Parameters
    ----------
    dataset : Dataset
        Captions, URLs, descriptors, GloVe and the caption embedder.
    model : ImageEmbedder
    database : ImageDatabase, optional
        Default: every image of the dataset, embedded by ``model``. The course builds it from
        the validation images: pass ``ImageDatabase.build(model, ids, descriptors)``.
    min_count : int, optional (default=5)
        Least number of captions a word must occur in to be a tag.

    Examples
    --------
    With real data (shown, not run as a test)::

        engine = SearchEngine(load_dataset(), ImageEmbedder.load(path))
        engine.search("two dogs playing in the snow", k=9)
    """

    def __init__(
        self,
        dataset: Dataset,
        model: ImageEmbedder,
        database: ImageDatabase | None = None,
        *,
        min_count: int = 5,
    ):
        instance("dataset", dataset, Dataset)
        instance("model", model, ImageEmbedder)
        instance("database", database, (ImageDatabase, type(None)))
        if model.d != dataset.glove.dim:
            raise ValueError(
                f"the model embeds into {model.d} dimensions, the word vectors have "
                f"{dataset.glove.dim}"
            )
        self.dataset = dataset
        self.model = model
        data = dataset.data
        if database is None:  # (an empty database is falsy: never test its truth)
            database = ImageDatabase.build(model, data.image_ids, data.descriptors)
        self.database = database
        self._descriptor_norms = None  # computed on the first descriptor-space query
        idf = dataset.text.idf
        n_t = idf.n_documents / np.power(10.0, idf.idf)  # invert IDF = log10(N / n_t)
        keep = (
            dataset.text.in_glove
            & (np.rint(n_t) >= min_count)
            & np.array([w not in STOP_WORDS and w.isalpha() for w in idf.words], dtype=bool)
        )
        self.tag_words = [w for w, k in zip(idf.words, keep, strict=True) if k]
        self._tag_index = {w: i for i, w in enumerate(self.tag_words)}
        vectors, _ = dataset.glove.lookup(self.tag_words)
        # a word's embedding as a one-word text: its unit GloVe vector, through the text map
        self.tag_vectors = model.embed_text(normalize_rows(vectors))

    # -- results -----------------------------------------------------------------------------

    def _results(self, matches: list[Match]) -> list[SearchResult]:
        data = self.dataset.data
        rows = data.image_index(np.array([m.image_id for m in matches], dtype=np.int64))
        return [
            SearchResult(m.image_id, m.score, data.urls[r], tuple(data.caption_texts_of_image(r)))
            for m, r in zip(matches, rows, strict=True)
        ]

    # -- queries -----------------------------------------------------------------------------

    def text_vector(self, text: str) -> np.ndarray:
        """The unit (d,) embedding of a query text (errors for empty or unknown text)."""
        return text_vector(self.model, self.dataset.text, text)

    def image_vector(self, image_id: int) -> np.ndarray:
        """The unit (d,) embedding of a dataset image, whether or not it is in the database."""
        if image_id in self.database:
            return self.database.embedding(image_id)
        return self.model.embed(self.dataset.data.descriptor(image_id)[None])[0]

    def search(
        self, query: str, k: int = 10, *, describe: Describe | None = None, exact: bool = False
    ) -> list[SearchResult]:
        """The ``k`` images that best match a query of `capstone.search.terms`: a text, or
        weighted text and photo terms (``"2:dog + ./pool.jpg - sand"``; a photo term needs
        ``describe``, e.g. ``PhotoDescriber(weights).describe``). ``exact`` scans every image
        rather than the database's index."""
        return self.search_vector(self.query_vector(query, describe=describe), k, exact=exact)

    def search_vector(
        self, q: np.ndarray, k: int = 10, *, exclude=(), exact: bool = False
    ) -> list[SearchResult]:
        """The ``k`` images whose embeddings have the highest cosine with the (d,) vector ``q``."""
        return self._results(self.database.query(q, k, exclude=exclude, exact=exact))

    def terms_vector(self, terms: Sequence[Term], describe: Describe | None = None) -> np.ndarray:
        """`terms_vector` of this engine's model and text side."""
        return terms_vector(self.model, self.dataset.text, terms, describe)

    def query_vector(
        self,
        query: str | Sequence[Term],
        *,
        image_id: int | None = None,
        describe: Describe | None = None,
    ) -> np.ndarray:
        """`query_vector` of a query (parsed with photo terms) or its terms, plus the
        embedding of image ``image_id`` if given."""
        terms = query if isinstance(query, list | tuple) else parse_terms(query, photos=True)
        image = None if image_id is None else self.image_vector(image_id)
        return query_vector(self.model, self.dataset.text, terms, describe, image=image)

    def rank_of(self, query: str, image_id: int, *, describe: Describe | None = None) -> Rank:
        """Where image ``image_id`` ranks among the database's images for a query (as `search`).

        ``rank = 1 + #(database images other than it that score higher)``: an equal score counts
        in its favour (`capstone.evaluation.metrics` counts ties as half, for unbiased averages).
        An image outside the database gets the rank it would have if it were added (of
        ``n_images`` = the database's size + 1).

        Examples
        --------
        With real data (shown, not run as a test)::

            engine.rank_of("two dogs playing in the snow", 298046)
            # Rank(image_id=298046, rank=12, score=0.41, n_images=3992, in_database=True)
        """
        return self.rank_of_vector(self.query_vector(query, describe=describe), image_id)

    def rank_of_vector(self, q: np.ndarray, image_id: int) -> Rank:
        """`rank_of` for a query vector (any length: scores are cosines)."""
        others = self.database.scores(q)  # cosines, as search scores them
        in_database = image_id in self.database
        if in_database:
            # the database's own score of it, not a dot product of its own: the two round
            # differently, and a duplicate image's equal score must count in its favour
            row = self.database.row(image_id)
            score = float(others[row])
            others = np.delete(others, row)
        else:
            unit = normalize_rows(np.asarray(q, dtype=np.float32))
            score = float(scores_of_rows(self.image_vector(image_id)[None], unit[None])[0, 0])
        return Rank(
            int(image_id),
            1 + int(np.count_nonzero(others > score)),
            score,
            len(self.database) + (not in_database),
            in_database,
        )

    def search_batch(
        self, texts: Sequence[str], k: int = 10, *, exact: bool = False
    ) -> list[list[SearchResult]]:
        """`search` for many texts at once (one matrix product, or one index search)."""
        instance(
            "texts", texts, (list, tuple, np.ndarray), hint="a list of query texts, even for one"
        )
        vectors = self.dataset.text.embed(texts)
        empty = np.flatnonzero(~vectors.any(axis=1))
        if len(empty):
            raise ValueError(f"query {texts[empty[0]]!r} has no word with an embedding")
        vectors = self.model.embed_text(vectors)
        return [self._results(m) for m in self.database.query_batch(vectors, k, exact=exact)]

    def similar(
        self, image_id: int, k: int = 10, *, space: str = "semantic", exact: bool = False
    ) -> list[SearchResult]:
        """Images like ``image_id`` (itself left out).

        Parameters
        ----------
        space : {"semantic", "descriptor"}
            Compare embeddings (what captions say), or raw ResNet descriptors (how images
            look to the network), which ranks every image of the dataset.
        """
        if space == "semantic":
            q = self.image_vector(image_id)
            matches = self.database.query(q, k, exclude=[image_id], exact=exact)
            return self._results(matches)
        data = self.dataset.data
        descriptor = data.descriptors[int(data.image_index(image_id))]
        return self.similar_to_descriptor(descriptor, k, space=space, exclude=[image_id])

    def similar_to_descriptor(
        self,
        descriptor: np.ndarray,
        k: int = 10,
        *,
        space: str = "semantic",
        exclude=(),
        exact: bool = False,
    ) -> list[SearchResult]:
        """Images like a (512,) or (1, 512) ResNet descriptor (of a photo, say).

        ``space="semantic"`` embeds it with the model and searches the database;
        ``"descriptor"`` ranks every image of the dataset by the cosine of raw descriptors
        (always exactly).
        """
        descriptor = np.asarray(descriptor, dtype=np.float32).reshape(-1)
        if space == "semantic":
            q = self.model.embed(descriptor[None])[0]
            return self._results(self.database.query(q, k, exclude=exclude, exact=exact))
        if space != "descriptor":
            raise ValueError(f"`space` must be 'semantic' or 'descriptor', got {space!r}")
        data = self.dataset.data
        if self._descriptor_norms is None:
            self._descriptor_norms = row_norms(data.descriptors)[:, 0]
        # cosine = (D x) / (||D_j|| ||x||), without a unit copy of D (N x 512 floats)
        norms = self._descriptor_norms
        scores = data.descriptors @ normalize_rows(descriptor)
        scores = np.divide(scores, norms, out=np.zeros_like(norms), where=norms > 0)
        rows = data.image_index(np.asarray(sorted(set(exclude)), dtype=np.int64))
        (matches,) = best_matches(scores[None], data.image_ids, count("k", k), exclude_rows=rows)
        return self._results(matches)

    def combined(
        self,
        add: Sequence[str] = (),
        subtract: Sequence[str] = (),
        *,
        image_id: int | None = None,
        k: int = 10,
        exact: bool = False,
    ) -> list[SearchResult]:
        """Images for a sum of queries, as rclip's ``--add`` and ``--subtract``.

        ``q = normalize(sum(embed(add)) - sum(embed(subtract)) + image embedding)``.

        Examples
        --------
        With real data (shown, not run as a test)::

            engine.combined(["a dog on a beach"], ["sand"])
            engine.combined(["snow"], image_id=57870)
        """
        if isinstance(add, str) or isinstance(subtract, str):
            raise TypeError("`add` and `subtract` must be sequences of texts, not one string")
        q = self.query_vector(plus_minus(add, subtract), image_id=image_id)
        exclude = [] if image_id is None else [image_id]
        return self.search_vector(q, k, exclude=exclude, exact=exact)

    def _nearest_words(self, vector: np.ndarray, k: int, exclude=()) -> list[tuple[str, float]]:
        scores = self.tag_vectors @ normalize_rows(np.asarray(vector, np.float32))
        for word in exclude:
            if word in self._tag_index:
                scores[self._tag_index[word]] = -np.inf
        best = top_k(scores, count("k", k))
        return [(self.tag_words[i], float(scores[i])) for i in best if np.isfinite(scores[i])]

    def tags(self, image_id: int, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` caption words nearest the image's embedding, with cosine scores."""
        return self._nearest_words(self.image_vector(image_id), k)

    def tags_of_descriptor(self, descriptor: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """`tags` for a (512,) or (1, 512) ResNet descriptor (of a photo, say)."""
        descriptor = np.asarray(descriptor, dtype=np.float32).reshape(1, -1)
        return self._nearest_words(self.model.embed(descriptor)[0], k)

    def similar_words(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """Caption words nearest ``word`` in GloVe space (the word may occur in no caption).

        With a learned text map, both sides go through it: nearest in the model's text space.
        """
        if not isinstance(word, str) or not word.strip():
            raise ValueError(f"`word` must be a non-empty string, got {word!r}")
        word = word.strip().lower()
        if word not in self.dataset.glove:
            raise UnknownKey(f"{word!r} has no GloVe vector in {self.dataset.glove.source}")
        vector = self.model.embed_text(normalize_rows(self.dataset.glove[word]))
        return self._nearest_words(vector, k, exclude=[word])
