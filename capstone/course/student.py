"""A student's ``my_capstone.py`` in the pipeline: loaded, checked for borrowed code, adapted.

The adapters wrap the student's functions into capstone's own interfaces, so that training,
evaluation, search and the web app run *their* code where it fits:

- `StudentText` (a `TextEmbedder`): their ``idf`` over the captions, their
  ``caption_embedding`` (and through it their ``tokenize``) for captions and queries;
- `StudentImageEmbedder` (an `ImageEmbedder`): their ``image_embedding`` as the forward pass;
- `train_student`: their ``coco_lookups``, ``make_triples`` and ``train_step`` each epoch;
- `StudentDatabase` (an `ImageDatabase`): their ``top_k`` answers every query;
- `StudentRun` (a `Run`): a trained run with all of the above (never cached: the run's
  ``database.npz`` and ``metrics.json`` stay those of capstone's own code).

A function that is missing or raises is reported by its task name (`StudentError`), never
replaced by capstone's.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import mygrad as mg
import numpy as np

from capstone.data.coco import CocoData
from capstone.data.glove import WordVectors
from capstone.dataset import Dataset
from capstone.embeddings.image import ImageEmbedder
from capstone.embeddings.text import TextEmbedder
from capstone.evaluation.metrics import caption_ranks
from capstone.runs import Run
from capstone.search.database import ImageDatabase, Match
from capstone.text.idf import IDF
from capstone.training.recipes import TrainConfig
from capstone.training.train import setup

__all__ = [
    "E2E_BAR",
    "E2E_CONFIG",
    "GRADE_DEMO_IMAGES",
    "MODULE",
    "STUDENT_LEARNING_RATE",
    "GloveDict",
    "StudentDatabase",
    "StudentError",
    "StudentImageEmbedder",
    "StudentRun",
    "StudentText",
    "end_to_end",
    "load_student",
    "student_dataset",
    "student_file",
    "train_student",
]

#: Plain SGD (the student's step has no momentum). On the 1,000-image demo, 4 epochs of the
#: solved kit reach R@10 0.11 at 0.01, 0.52 at 0.1, 0.60 at 0.3, 0.58 at 1.0 (200 images: chance
#: 0.05).
STUDENT_LEARNING_RATE = 0.3

#: The end-to-end check's training: the course recipe on the grading demo, few epochs, so
#: that 30 submissions grade in minutes.
E2E_CONFIG = TrainConfig(recipe="course", epochs=6, learning_rate=STUDENT_LEARNING_RATE, seed=0)


#: The student's module: one file in the kit folder.
MODULE = "my_capstone"

GRADE_DEMO_IMAGES = 1_000  # 800 to train on, 200 to rank among (R@10 by chance: 0.05)
#: The solved kit reaches R@10 0.69 in E2E_CONFIG's 6 epochs (0.55 after 3); a flipped margin
#: 0.0. The bar leaves room for other correct ways to write the tasks.
E2E_BAR = 0.5


class StudentError(ValueError):
    """A student's function is missing or failed; the message names the task."""


def student_file(folder: str | os.PathLike) -> Path:
    """``my_capstone.py`` in ``folder``; a FileNotFoundError says what is missing."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (a student folder holds {MODULE}.py)")
    path = folder / f"{MODULE}.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder}: no {MODULE}.py in it (make a kit with `python -m capstone kit DIR`)"
        )
    return path


def load_student(folder: str | os.PathLike):
    """Import the student's ``my_capstone.py`` from ``folder`` (its folder is importable too,
    for helper modules of their own).

    Raises
    ------
    FileNotFoundError
        No such folder or file.
    StudentError
        The module fails to import (the message has the error).
    """
    path = student_file(folder)
    spec = importlib.util.spec_from_file_location(MODULE, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise StudentError(f"{path} does not import: {type(e).__name__}: {e}") from None
    finally:
        sys.path.remove(str(path.parent))
    sys.modules[MODULE] = module
    return module


def _function(module, name: str):
    f = getattr(module, name, None)
    if not callable(f):
        raise StudentError(f"task {name}: {MODULE}.py has no function {name}")
    return f


def call(module, name: str, *args):
    """``module.name(*args)``; a missing function or any exception is a `StudentError`."""
    f = _function(module, name)
    try:
        return f(*args)
    except NotImplementedError:
        raise StudentError(f"task {name}: {MODULE}.{name} is not written yet") from None
    except Exception as e:
        raise StudentError(f"task {name}: {MODULE}.{name} failed: {type(e).__name__}: {e}") from e


def _floats(x) -> np.ndarray:
    return np.asarray(x.data if isinstance(x, mg.Tensor) else x, dtype=np.float32)


class GloveDict(Mapping):
    """`WordVectors` as the plain ``dict`` word -> vector the task texts promise (read-only,
    no copy)."""

    def __init__(self, vectors: WordVectors):
        self.vectors = vectors

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[word]

    def __contains__(self, word: object) -> bool:
        return word in self.vectors

    def __iter__(self):
        return iter(self.vectors.index)

    def __len__(self) -> int:
        return len(self.vectors.index)


class StudentText(TextEmbedder):
    """Their ``idf`` over ``captions`` and their ``caption_embedding``, as a `TextEmbedder`.

    The IDF table (for `known_words` and the vocabulary of ``tags`` and ``words``) is theirs.
    """

    def __init__(self, module, captions, glove):
        self.student = module
        self.idf_of = call(module, "idf", list(captions))
        words = sorted(self.idf_of)
        super().__init__(IDF(words, [self.idf_of[w] for w in words], len(captions)), glove)
        self.glove_dict = GloveDict(glove)

    def embed(self, texts) -> np.ndarray:
        rows = [_floats(call(self.student, "caption_embedding", t, self.idf_of, self.glove_dict))
                for t in texts]  # fmt: skip
        if any(r.shape != (self.dim,) for r in rows):
            bad = next(r.shape for r in rows if r.shape != (self.dim,))
            raise StudentError(f"task caption_embedding: returned shape {bad}, not ({self.dim},)")
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)


class StudentImageEmbedder(ImageEmbedder):
    """An `ImageEmbedder` whose forward pass is the student's ``image_embedding``."""

    @classmethod
    def of(cls, model: ImageEmbedder, module) -> StudentImageEmbedder:
        """The same weights (shared), embedded by ``module``'s function."""
        adapted = cls.__new__(cls)
        adapted.__dict__.update(model.__dict__)
        adapted.student = module
        return adapted

    def __call__(self, descriptors) -> mg.Tensor:
        return call(self.student, "image_embedding", descriptors, self.weight)

    def embed(self, descriptors: np.ndarray) -> np.ndarray:
        x = np.asarray(descriptors, dtype=np.float32)
        out = _floats(call(self.student, "image_embedding", x, self.weight.data))
        if out.shape != (len(x), self.d):
            raise StudentError(
                f"task image_embedding: returned shape {out.shape}, not ({len(x)}, {self.d})"
            )
        return out


class StudentDatabase(ImageDatabase):
    """An `ImageDatabase` whose queries the student's ``top_k`` answers."""

    student = None

    def answering(self, *, exact: bool = False) -> str:
        return f"your top_k over the scores of all {len(self):,} images"

    def query_batch(self, vectors, k=10, *, exclude=(), exact=True) -> list[list[Match]]:
        """Their ``top_k`` of every image's score: always the whole scan (``exact`` is moot)."""
        scores = self.scores(vectors)
        rows = [self._rows[int(i)] for i in exclude if int(i) in self._rows]
        scores[:, rows] = -np.inf
        n = min(k, scores.shape[1] - len(rows))
        out = []
        for row in np.atleast_2d(scores):
            best = [int(i) for i in call(self.student, "top_k", row.tolist(), n)] if n > 0 else []
            out.append([Match(int(self.image_ids[i]), float(row[i])) for i in best])
        return out


@dataclass
class StudentRun(Run):
    """A run whose model, database and queries are the student's (see the module docstring)."""

    student: object = field(default=None, repr=False)

    @classmethod
    def of(cls, run: Run, module) -> StudentRun:
        return cls(run.path, StudentImageEmbedder.of(run.model, module), list(run.warnings),
                   student=module)  # fmt: skip

    @property
    def in_runs_dir(self) -> bool:
        return False  # the run folder's caches and metrics.json are capstone's, never theirs

    def evaluate(self, dataset, *, other_data=False) -> dict:
        """`Run.evaluate` of the student's embeddings; the report names their module."""
        return {**super().evaluate(dataset, other_data=other_data),
                "student": str(self.student.__file__)}  # fmt: skip

    def database(self, dataset, images="validation", *, other_data=False) -> StudentDatabase:
        db = super().database(dataset, images, other_data=other_data)
        adapted = StudentDatabase(db.image_ids, db.embeddings, info=db.info)
        adapted.student = self.student
        return adapted


def student_dataset(ds: Dataset, module, *, embed_captions: bool | None = None) -> Dataset:
    """``ds`` with the student's text embedding, and their caption embeddings if
    ``embed_captions`` (by default: if ``ds`` has caption embeddings)."""
    text = StudentText(module, ds.data.captions, ds.glove)
    if embed_captions is None:
        embed_captions = ds.caption_embeddings is not None
    embeddings = text.embed(ds.data.captions) if embed_captions else None
    return Dataset(ds.files, ds.data, ds.glove, text, embeddings)


def _annotations(data: CocoData) -> list[dict]:
    return [
        {"id": int(c), "image_id": int(data.image_ids[i]), "caption": text}
        for c, i, text in zip(data.caption_ids, data.caption_image, data.captions, strict=True)
    ]


def train_student(module, ds: Dataset, config: TrainConfig, *, info=None, log=None):
    """Train with the student's code: their lookups, triples and step (the course recipe).

    Parameters
    ----------
    module
        The student's module.
    ds : Dataset
        With the student's caption embeddings (`student_dataset`).
    config : TrainConfig
        recipe "course"; epochs, batch_size, learning_rate (plain SGD), margin, seed are used.
    log : callable, optional
        ``log(epoch, mean_loss)`` after each epoch.

    Returns
    -------
    model : StudentImageEmbedder
        Its info records the split (``val_image_ids``) as `capstone.training.train.setup` does.
    val_images : numpy.ndarray
        The validation image indices.
    """
    start = setup(ds.data, ds.caption_embeddings, config, info=info)
    data, captions = ds.data, ds.caption_embeddings
    _, image_of = call(module, "coco_lookups", _annotations(data))
    caption_row = {int(c): i for i, c in enumerate(data.caption_ids)}
    image_row = {int(m): i for i, m in enumerate(data.image_ids)}
    fit_ids = data.image_ids[start.fit_images].tolist()
    model = StudentImageEmbedder.of(start.model, module)
    for epoch in range(1, config.epochs + 1):
        rng = np.random.default_rng([config.seed, epoch])
        triples = call(module, "make_triples", image_of, fit_ids, rng)
        try:
            rows = np.array([(caption_row[c], image_row[t], image_row[f]) for c, t, f in triples])
        except (KeyError, TypeError, ValueError) as e:
            problem = f"task make_triples: a triple names no caption or image: {e}"
            raise StudentError(problem) from None
        rows = rows[rng.permutation(len(rows))]
        losses = []
        for s in range(0, len(rows), config.batch_size):
            batch = rows[s : s + config.batch_size]
            losses.append(call(module, "train_step", model.weight, captions[batch[:, 0]],
                               data.descriptors[batch[:, 1]], data.descriptors[batch[:, 2]],
                               config.margin, config.learning_rate))  # fmt: skip
        mean = float(np.mean(losses)) if losses else float("nan")
        if not np.isfinite(mean) or not np.isfinite(model.weight.data).all():
            raise StudentError(f"task train_step: the loss became {mean} in epoch {epoch}")
        if log is not None:
            log(epoch, mean)
    return model, start.val_images


def end_to_end(module, ds: Dataset, config: TrainConfig = E2E_CONFIG) -> dict:
    """The student's whole pipeline on ``ds``: caption R@10 on its validation images.

    Their text embedding, lookups, triples, training step and image embedding produce the
    embeddings; ranks and recall are capstone's (`caption_ranks`), so that a bug in their
    metrics can neither sink nor inflate the figure (it costs its own task).

    Returns
    -------
    dict
        ``r10``; ``norms``: the smallest and largest norm of their validation image
        embeddings (the database's scores are cosines only for unit rows).
    """
    ds = student_dataset(ds, module, embed_captions=True)
    model, val = train_student(module, ds, config)
    images = model.embed(ds.data.descriptors[val])
    rows = np.flatnonzero(np.isin(ds.data.caption_image, val))
    true = np.searchsorted(val, ds.data.caption_image[rows])
    ranks = caption_ranks(ds.caption_embeddings[rows], images, true)
    norms = np.linalg.norm(images, axis=1)
    return {"r10": float(np.mean(ranks <= 10)), "norms": [float(norms.min()), float(norms.max())]}
