"""What the web app answers, as plain data: one loaded run, its engines, every input checked.

`SearchService` turns request values (strings) into checked arguments, calls the search
engine of the run and returns JSON-ready dicts; the HTML pages and the JSON API render the
same dicts. A bad value raises `BadInput` (HTTP 400) naming the parameter; an unknown image id
raises `NotFound` (HTTP 404). A URL reaches a page or an export only through
`capstone.search.display.usable_url`.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from capstone.common.checks import count
from capstone.dataset import Dataset
from capstone.evaluation.metrics import format_report
from capstone.photos.describer import PhotoDescriber
from capstone.photos.preprocess import PhotoError, PhotoSource, open_photo
from capstone.photos.weight_files import WEIGHTS_FILE
from capstone.runs import IMAGE_SETS, Run
from capstone.search.display import is_generated_url, usable_url
from capstone.search.engine import SearchEngine, SearchResult, ignored_words
from capstone.search.terms import parse_terms

__all__ = [
    "MAX_K",
    "MAX_PHOTOS_AT_ONCE",
    "MAX_QUERY_CHARS",
    "BadInput",
    "Busy",
    "NotFound",
    "PhotoUnavailable",
    "SearchService",
]

MAX_QUERY_CHARS = 200
MAX_K = 100
DEFAULT_K = 12
SPACES = ("semantic", "descriptor")
# a photo takes up to ~150 MB and a core while it is decoded and described: two at a time
MAX_PHOTOS_AT_ONCE = 2
PHOTO_WAIT_SECONDS = 10.0  # how long a third photo waits for a turn before a 503
PREVIEW_PIXELS = 200  # the longer side of the thumbnail the photo page shows


class BadInput(ValueError):
    """A request value that cannot be used; the message names the parameter."""


class NotFound(KeyError):
    """An image id that is not in the run's data."""


class PhotoUnavailable(RuntimeError):
    """Photo queries asked of a server without ResNet-18's weights (HTTP 503)."""


class Busy(RuntimeError):
    """Every photo slot stayed taken for the whole wait (HTTP 503, try again)."""


def _k(value, default: int = DEFAULT_K) -> int:
    """A request's ``k`` (a string, or None or "" for ``default``) as a whole number from 1 to
    `MAX_K`; `checks.count` is the rule for "a positive integer"."""
    if value is None or value == "":
        return default
    try:
        value = int(value)
    except (TypeError, ValueError):
        pass  # `count` refuses it, naming it as given
    try:
        return count("k", value, most=MAX_K)
    except ValueError as e:
        raise BadInput(str(e)) from None


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
    photo_slots : threading.Semaphore
        Photos decoded and described at once (`MAX_PHOTOS_AT_ONCE`); others wait.
    photo_wait : float
        Seconds a photo waits for a slot before `Busy`.
    """

    run: Run
    dataset: Dataset
    engines: dict[str, SearchEngine]
    describer: PhotoDescriber | None = None
    photo_slots: threading.Semaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(MAX_PHOTOS_AT_ONCE)
    )
    photo_wait: float = PHOTO_WAIT_SECONDS

    @classmethod
    def load(
        cls, run: Run, dataset: Dataset, describer: PhotoDescriber | None = None
    ) -> SearchService:
        """Build both engines (their databases come from the run's cache when it has one), and
        load or build their approximate indexes now rather than in the first request."""
        engines = {images: run.engine(dataset, images) for images in IMAGE_SETS}
        for engine in engines.values():
            engine.database.index()
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
        return query, terms, q, ignored_words(self.dataset.text, terms)

    # -- answers ---------------------------------------------------------------------------------

    def _result(self, rank: int, r: SearchResult) -> dict:
        url = usable_url(r.url)
        return {
            "rank": rank,
            "image_id": r.image_id,
            "score": round(r.score, 4),
            "url": url,
            "generated": url is not None and is_generated_url(url),
            "captions": [c.strip() for c in r.captions],
        }

    def search(self, query, k=None, threshold=None, images=None) -> dict:
        """Top ``k`` images for a query (``2:dog + beach - sand``), scores >= ``threshold``.

        ``best_score`` is the top score before the threshold: why a threshold left nothing.
        """
        query, terms, q, ignored = self._query(query)
        k = _k(k)
        threshold = _threshold(threshold)
        images, engine = self._engine(images)
        top = engine.search_vector(q, k)
        results = [r for r in top if r.score >= threshold]
        return {
            "query": query,
            "terms": [{"weight": w, "text": t} for w, t in terms],
            "ignored_words": ignored,
            "images": images,
            "n_images": len(engine.database),
            "k": k,
            "threshold": threshold,
            "best_score": round(top[0].score, 4) if top else None,
            "results": [self._result(i, r) for i, r in enumerate(results, 1)],
        }

    def image(self, image_id) -> dict:
        """An image's id, URL and captions, and whether it is one of the validation images."""
        image_id, row = self._image_id(image_id)
        data = self.dataset.data
        url = usable_url(data.urls[row])
        return {
            "image_id": image_id,
            "url": url,
            "generated": url is not None and is_generated_url(url),
            "captions": [c.strip() for c in data.caption_texts_of_image(row)],
            "validation": image_id in self.engines["validation"].database,
        }

    def similar(self, image_id, k=None, space=None, images=None) -> dict:
        """Images like ``image_id`` (itself left out), in the semantic or descriptor space."""
        image_id, _ = self._image_id(image_id)
        k = _k(k)
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
        k = _k(k, 8)
        pairs = self.engines["all"].tags(image_id, k)
        return {
            "image_id": image_id,
            "tags": [{"word": w, "score": round(s, 4)} for w, s in pairs],
        }

    def rank(self, query, image_id, images=None) -> dict:
        """Where ``image_id`` ranks for ``query`` among the chosen images.

        ``n_images`` is the number of images searched, as `search` says; an image that is not
        one of them is ranked as if it were added.
        """
        query, _, q, ignored = self._query(query)
        image_id, _ = self._image_id(image_id)
        images, engine = self._engine(images)
        rank = asdict(engine.rank_of_vector(q, image_id))
        rank["score"] = round(rank["score"], 4)
        rank["n_images"] = len(engine.database)
        return {"query": query, "ignored_words": ignored, "images": images, **rank}

    def check_photo_queries(self) -> None:
        """`PhotoUnavailable` (saying how to get the weights) when there is no ResNet-18."""
        if self.describer is None:
            raise PhotoUnavailable(
                "photo queries need ResNet-18's weights: start the server with --weights FILE "
                f"({WEIGHTS_FILE} or a .safetensors file), or run `python -m capstone "
                "describe PHOTO` once online to download them"
            )

    def photo(
        self, source: PhotoSource, k=None, space=None, images=None, *, preview: bool = False
    ) -> dict:
        """Images like an uploaded photo (``source``: the upload, open) and its tags.

        At most `MAX_PHOTOS_AT_ONCE` photos are decoded and described at a time; another waits
        up to ``photo_wait`` seconds for a turn. ``preview`` adds ``preview``, a ``data:`` URL of
        a small JPEG of the photo (as the network saw it: upright, RGB) for the page.

        Raises
        ------
        PhotoUnavailable
            When the server has no ResNet-18 weights.
        Busy
            When no slot came free in time.
        BadInput
            For a file that is not a readable photo (the reason, without the server's path).
        """
        self.check_photo_queries()
        k = _k(k)
        space, images, engine = self._space(space, images)
        if not self.photo_slots.acquire(timeout=self.photo_wait):
            raise Busy(
                f"the server is describing {MAX_PHOTOS_AT_ONCE} other photos: try again in a "
                "few seconds"
            )
        try:
            image = open_photo(source)
            descriptor = self.describer.describe_image(image)
            thumbnail = _data_url(image) if preview else None
        except PhotoError as e:
            raise BadInput(f"photo: {e.reason}") from None
        finally:
            self.photo_slots.release()
        results = engine.similar_to_descriptor(descriptor, k, space=space)
        tags = engine.tags_of_descriptor(descriptor, 8)
        answer = {
            "space": space,
            "images": images,
            "k": k,
            "tags": [{"word": w, "score": round(s, 4)} for w, s in tags],
            "results": [self._result(i, r) for i, r in enumerate(results, 1)],
        }
        if preview:
            answer["preview"] = thumbnail
        return answer

    def about(self) -> dict:
        """The run, its data and how well it retrieves (from its saved report, if any)."""
        run, ds = self.run, self.dataset
        report = run.saved_report()
        return {
            "run": run.name,
            "model_file": str(run.path) if run.path is not None else None,
            "recipe": run.recipe,
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
            "answered_by": {
                images: engine.database.answering() for images, engine in self.engines.items()
            },
            "glove": ds.glove.source,
            "idf_vocabulary": len(ds.text.idf),
            "warnings": list(run.warnings),
            "metrics": format_report(report) if report else None,
            "photo_queries": self.describer is not None,
        }


def _data_url(image: Image.Image) -> str:
    """A ``data:image/jpeg`` URL of ``image`` scaled to `PREVIEW_PIXELS` on its longer side."""
    small = image.copy()
    small.thumbnail((PREVIEW_PIXELS, PREVIEW_PIXELS))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")
