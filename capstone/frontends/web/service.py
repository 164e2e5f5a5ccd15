"""What the web app answers, as plain data: one loaded run, its engines, every input checked.

`SearchService` turns request values (strings) into checked arguments, calls the search
engine of the run and returns JSON-ready dicts; the HTML pages and the JSON API render the
same dicts. A bad value raises `BadInput` (HTTP 400) naming the parameter; an unknown image id
raises `NotFound` (HTTP 404).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from capstone.dataset import Dataset
from capstone.evaluation.metrics import format_report
from capstone.image.photos import PhotoDescriber
from capstone.image.preprocess import PhotoError
from capstone.image.weights import WEIGHTS_FILE
from capstone.runs import IMAGE_SETS, Run
from capstone.search.display import is_generated_url
from capstone.search.engine import SearchEngine, SearchResult
from capstone.search.terms import parse_terms

__all__ = ["MAX_K", "MAX_QUERY_CHARS", "BadInput", "NotFound", "PhotoUnavailable", "SearchService"]

MAX_QUERY_CHARS = 200
MAX_K = 100
DEFAULT_K = 12
SPACES = ("semantic", "descriptor")


class BadInput(ValueError):
    """A request value that cannot be used; the message names the parameter."""


class NotFound(KeyError):
    """An image id that is not in the run's data."""


class PhotoUnavailable(RuntimeError):
    """Photo queries asked of a server without ResNet-18's weights (HTTP 503)."""


def _int(name: str, value, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadInput(
            f"{name} must be a whole number from {low} to {high}, got {value!r}"
        ) from None
    if not low <= number <= high:
        raise BadInput(f"{name} must be a whole number from {low} to {high}, got {number}")
    return number


def _threshold(value) -> float:
    if value is None or value == "":
        return -1.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not -1.0 <= number <= 1.0:  # NaN fails too
        raise BadInput(f"threshold must be a number from -1 to 1, got {value!r}")
    return number


def _choice(name: str, value, options: tuple[str, ...]) -> str:
    if value is None or value == "":
        return options[0]
    if value not in options:
        raise BadInput(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


@dataclass
class SearchService:
    """One run and its data, with an engine for the validation images and one for all.

    Attributes
    ----------
    run : Run
    dataset : Dataset
    engines : dict[str, SearchEngine]
        ``"validation"`` (the course's database) and ``"all"``.
    describer : PhotoDescriber or None
        ResNet-18, for queries by an uploaded photo; None when no weights were found.
    """

    run: Run
    dataset: Dataset
    engines: dict[str, SearchEngine]
    describer: PhotoDescriber | None = None

    @classmethod
    def load(
        cls, run: Run, dataset: Dataset, describer: PhotoDescriber | None = None
    ) -> SearchService:
        """Build both engines (their databases come from the run's cache when it has one)."""
        engines = {images: run.engine(dataset, images) for images in IMAGE_SETS}
        return cls(run, dataset, engines, describer)

    # -- checked arguments ---------------------------------------------------------------------

    def _engine(self, images) -> tuple[str, SearchEngine]:
        images = _choice("images", images, IMAGE_SETS)
        return images, self.engines[images]

    def _space(self, space, images) -> tuple[str, str, SearchEngine]:
        """(space, images, engine) for a similarity query: raw descriptors rank every image of
        the data, whatever images were asked for."""
        space = _choice("space", space, SPACES)
        images, engine = self._engine(images)
        if space == "descriptor":
            images, engine = "all", self.engines["all"]
        return space, images, engine

    def _image_id(self, image_id) -> tuple[int, int]:
        """(the id, its row in the data); `NotFound` for an id that is not in the data."""
        try:
            number = int(image_id)
            return number, int(self.dataset.data.image_index(number))
        except (TypeError, ValueError, KeyError, OverflowError):
            raise NotFound(f"there is no image {image_id} in this data") from None

    def _query(self, query) -> tuple[str, list[tuple[float, str]], np.ndarray, list[str]]:
        if query is None or not str(query).strip():
            raise BadInput("q (the query) is empty: type some words")
        query = str(query)
        if len(query) > MAX_QUERY_CHARS:
            raise BadInput(
                f"q (the query) is {len(query)} characters long; at most {MAX_QUERY_CHARS}"
            )
        engine = self.engines["all"]
        try:
            terms = parse_terms(query)  # no photo terms: a request never names a server file
            q = engine.query_vector(terms)  # its errors say what the CLI's say
        except ValueError as e:
            raise BadInput(f"q: {e}") from None
        text = self.dataset.text
        ignored = [w for _, t in terms for w in text.known_words(t)[1]]
        return query, terms, q, ignored

    # -- answers ---------------------------------------------------------------------------------

    def _result(self, rank: int, r: SearchResult) -> dict:
        return {
            "rank": rank,
            "image_id": r.image_id,
            "score": round(r.score, 4),
            "url": r.url,
            "generated": is_generated_url(r.url),
            "captions": [c.strip() for c in r.captions],
        }

    def search(self, query, k=None, threshold=None, images=None) -> dict:
        """Top ``k`` images for a query (``2:dog + beach - sand``), scores >= ``threshold``."""
        query, terms, q, ignored = self._query(query)
        k = _int("k", k, DEFAULT_K, 1, MAX_K)
        threshold = _threshold(threshold)
        images, engine = self._engine(images)
        results = [r for r in engine.search_vector(q, k) if r.score >= threshold]
        return {
            "query": query,
            "terms": [{"weight": w, "text": t} for w, t in terms],
            "ignored_words": ignored,
            "images": images,
            "n_images": len(engine.database),
            "k": k,
            "threshold": threshold,
            "results": [self._result(i, r) for i, r in enumerate(results, 1)],
        }

    def image(self, image_id) -> dict:
        """An image's id, URL and captions, and whether it is one of the validation images."""
        image_id, row = self._image_id(image_id)
        data = self.dataset.data
        url = data.urls[row]
        return {
            "image_id": image_id,
            "url": url,
            "generated": is_generated_url(url),
            "captions": [c.strip() for c in data.caption_texts_of_image(row)],
            "validation": image_id in self.engines["validation"].database,
        }

    def similar(self, image_id, k=None, space=None, images=None) -> dict:
        """Images like ``image_id`` (itself left out), in the semantic or descriptor space."""
        image_id, _ = self._image_id(image_id)
        k = _int("k", k, DEFAULT_K, 1, MAX_K)
        space, images, engine = self._space(space, images)
        results = engine.similar(image_id, k, space=space)
        return {
            "image_id": image_id,
            "space": space,
            "images": images,
            "k": k,
            "results": [self._result(i, r) for i, r in enumerate(results, 1)],
        }

    def tags(self, image_id, k=None) -> dict:
        """The caption words nearest the image's embedding."""
        image_id, _ = self._image_id(image_id)
        k = _int("k", k, 8, 1, MAX_K)
        pairs = self.engines["all"].tags(image_id, k)
        return {
            "image_id": image_id,
            "tags": [{"word": w, "score": round(s, 4)} for w, s in pairs],
        }

    def rank(self, query, image_id, images=None) -> dict:
        """Where ``image_id`` ranks for ``query`` among the chosen images."""
        query, _, q, ignored = self._query(query)
        image_id, _ = self._image_id(image_id)
        images, engine = self._engine(images)
        rank = asdict(engine.rank_of_vector(q, image_id))
        rank["score"] = round(rank["score"], 4)
        return {"query": query, "ignored_words": ignored, "images": images, **rank}

    def check_photo_queries(self) -> None:
        """`PhotoUnavailable` (saying how to get the weights) when there is no ResNet-18."""
        if self.describer is None:
            raise PhotoUnavailable(
                "photo queries need ResNet-18's weights: start the server with --weights FILE "
                f"({WEIGHTS_FILE} or a .safetensors file), or run `python -m capstone "
                "describe PHOTO` once online to download them"
            )

    def photo(self, path: Path, k=None, space=None, images=None) -> dict:
        """Images like an uploaded photo (saved by the app at ``path``) and its tags.

        Raises
        ------
        PhotoUnavailable
            When the server has no ResNet-18 weights.
        BadInput
            For a file that is not a readable photo (the reason, without the server's path).
        """
        self.check_photo_queries()
        k = _int("k", k, DEFAULT_K, 1, MAX_K)
        space, images, engine = self._space(space, images)
        try:
            descriptor = self.describer.describe(path)
        except PhotoError as e:
            raise BadInput(f"photo: {e.reason}") from None
        results = engine.similar_to_descriptor(descriptor, k, space=space)
        tags = engine.tags_of_descriptor(descriptor, 8)
        return {
            "space": space,
            "images": images,
            "k": k,
            "tags": [{"word": w, "score": round(s, 4)} for w, s in tags],
            "results": [self._result(i, r) for i, r in enumerate(results, 1)],
        }

    def about(self) -> dict:
        """The run, its data and how well it retrieves (from its saved report, if any)."""
        run, ds = self.run, self.dataset
        report = run.saved_report()
        return {
            "run": run.name,
            "model_file": str(run.path) if run.path is not None else None,
            "recipe": run.config.get("recipe", "course" if run.config else None),
            "settings": run.config,
            "epochs_trained": len(run.history),
            "best_epoch": run.model.info.get("best_epoch"),
            "dimension": run.model.d,
            "text_map": run.model.text_map is not None,
            "data_folder": str(ds.files.captions.parent),
            "data_source": ds.files.source,
            "demo": ds.files.is_demo,
            "images": ds.data.n_images,
            "captions": ds.data.n_captions,
            "validation_images": len(self.engines["validation"].database),
            "glove": ds.glove.source,
            "idf_vocabulary": len(ds.text.idf),
            "warnings": list(run.warnings),
            "metrics": format_report(report) if report else None,
            "photo_queries": self.describer is not None,
        }
