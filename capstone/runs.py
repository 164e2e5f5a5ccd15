"""A trained run: its model together with what it was trained on, used as it was trained.

A run folder ``<data home>/runs/<name>/`` holds ``model.npz`` (weights and metadata),
``checkpoint.npz`` (training state, for ``--resume``), ``metrics.json`` (written by
``evaluate`` and ``demo``) and ``database.npz`` (a rebuildable cache). The model's metadata
records the training settings, the COCO ids of the validation images, the data fingerprint and
the word vectors, so `Run` can

- evaluate and search on exactly the run's validation images (the course's database);
- refuse other data or other word vectors, saying what differs (``other_data=True`` goes on,
  and the run then says that its split means nothing on that data).

With real data (shown, not run as a test)::

    run = Run.load("demo-20261123-101500")
    engine = run.engine(load_dataset())
    engine.search("two dogs playing in the snow")
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path

import numpy as np

from capstone.common.archive import ArchiveError, load_archive
from capstone.common.checks import instance
from capstone.data.paths import runs_dir
from capstone.data.split import split_images
from capstone.dataset import Dataset, run_differences
from capstone.embeddings.image import ImageEmbedder
from capstone.evaluation.metrics import evaluation_report
from capstone.search.database import ImageDatabase
from capstone.search.engine import SearchEngine
from capstone.training.checkpoint import CHECKPOINT_FILE, CHECKPOINT_KIND, MODEL_FILE
from capstone.training.train import TrainResult
from capstone.training.train import train as train_model
from capstone.training.triples import evaluation_triples

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_KIND",
    "IMAGE_SETS",
    "METRICS_FILE",
    "MODEL_FILE",
    "Interrupted",
    "Run",
    "RunMismatch",
    "Trained",
    "list_interrupted",
    "list_runs",
    "resume_command",
    "runs_folder",
    "train",
]

METRICS_FILE = "metrics.json"
IMAGE_SETS = ("validation", "all")


class RunMismatch(ValueError):
    """The data or word vectors in use are not those the run was trained on."""


def runs_folder() -> Path:
    """`capstone.data.paths.runs_dir`, refused when something else than a folder is there.

    Raises
    ------
    NotADirectoryError
        Naming the path, rather than "no runs" (a file holds no run) or ``[Errno 20]``.
    """
    folder = runs_dir()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            f"{folder} is a file, but runs are kept in a folder of that name: move the file "
            "away (or set CAPSTONE_HOME to another data home)"
        )
    return folder


def _model_files() -> list[Path]:
    """Every run's model file, oldest first."""
    return sorted(runs_folder().glob(f"*/{MODEL_FILE}"), key=lambda p: p.stat().st_mtime)


def resume_command(
    name: str, epochs: int, data_folder: str | os.PathLike | None = None, glove: str | None = None
) -> str:
    """The command that continues run ``name`` to ``epochs`` epochs from its checkpoint.

    A resumed run takes its settings from the checkpoint: the data (and word vectors, when they
    were not the data folder's) are all it needs.

    >>> resume_command("r", 10, "/data/coco")
    'python -m capstone train --run r --resume --epochs 10 --data /data/coco'
    """
    data = f" --data {data_folder}" if data_folder else ""
    vectors = f" --glove {glove}" if glove else ""
    return f"python -m capstone train --run {name} --resume --epochs {epochs}{data}{vectors}"


@dataclass(frozen=True)
class Interrupted:
    """A run folder with a checkpoint and no model: its training stopped before its end.

    Attributes
    ----------
    name : str
    checkpoint : Path
    epochs_done, epochs : int
        Epochs the checkpoint holds, and the epochs the training was asked for.
    info : dict
        What the model would record (data folder and fingerprint, word vectors, settings).
    """

    name: str
    checkpoint: Path
    epochs_done: int
    epochs: int
    info: dict

    @classmethod
    def of(cls, folder: Path) -> Interrupted | None:
        """The interrupted run in ``folder``, or None (it has a model, or no checkpoint).

        Raises
        ------
        capstone.common.archive.ArchiveError
            If the checkpoint cannot be read.
        """
        checkpoint = folder / CHECKPOINT_FILE
        if (folder / MODEL_FILE).exists() or not checkpoint.is_file():
            return None
        _, meta = load_archive(checkpoint, kind=CHECKPOINT_KIND)
        info = dict(meta.get("info", {}))
        epochs = meta.get("config", {}).get("epochs", info.get("train", {}).get("epochs", 0))
        return cls(folder.name, checkpoint, len(meta.get("history", [])), int(epochs), info)

    @property
    def resume_command(self) -> str:
        return resume_command(self.name, self.epochs, self.info.get("data_folder"))

    def __str__(self) -> str:
        return (
            f"run {self.name!r} has no model yet: its training stopped after epoch "
            f"{self.epochs_done} of {self.epochs} ({self.checkpoint} keeps it); continue it with "
            f"{self.resume_command}"
        )


def list_interrupted() -> list[Interrupted]:
    """Every interrupted run in the data home (`Interrupted`), oldest first; an unreadable
    checkpoint is skipped."""
    found = []
    checkpoints = runs_folder().glob(f"*/{CHECKPOINT_FILE}")
    for checkpoint in sorted(checkpoints, key=lambda p: p.stat().st_mtime):
        try:
            run = Interrupted.of(checkpoint.parent)
        except (ArchiveError, OSError):
            continue
        if run is not None:
            found.append(run)
    return found


def list_runs() -> list[Run]:
    """Every run in the data home, oldest first (runs whose model cannot be read are skipped)."""
    runs = []
    for path in _model_files():
        try:
            runs.append(Run.load(path))
        except (ArchiveError, OSError):
            continue
    return runs


@dataclass
class Run:
    """A trained model and the facts of its training.

    Attributes
    ----------
    path : Path or None
        The model file; None for a model trained in this session and not saved
        (`Trained.run`).
    model : ImageEmbedder
    warnings : list[str]
        Set by `check` when the run is used on data it was not trained on.
    """

    path: Path | None
    model: ImageEmbedder
    warnings: list[str] = field(default_factory=list)
    # (data fingerprint, word vectors) that `check` last passed: checked once, not each call
    _checked: tuple[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None = None, *, d: int | None = None) -> Run:
        """The run named ``name_or_path``, or at that path (model file or run folder).

        None loads the newest run. ``d`` is the word-vector dimension in use: a model of
        another dimension is an error (`ImageEmbedder.load`).

        Raises
        ------
        FileNotFoundError
            No such run, or no run at all; the message says how to list or make one. A run
            whose training stopped before it saved a model says how to resume it.
        NotADirectoryError
            If the runs folder is a file (`runs_folder`).
        """
        instance("name_or_path", name_or_path, (str, os.PathLike, type(None)))
        instance("d", d, (int, type(None)))
        if name_or_path is None:
            files = _model_files()
            if not files:
                raise FileNotFoundError(
                    f"no trained model in {runs_folder()}: run `python -m capstone demo` or "
                    "`python -m capstone train` first, or pass --model FILE"
                )
            path = files[-1]
        else:
            given = Path(name_or_path).expanduser()
            if given.is_file():
                path = given
            elif (given / MODEL_FILE).is_file():
                path = given / MODEL_FILE
            elif (runs_folder() / str(name_or_path) / MODEL_FILE).is_file():
                path = runs_folder() / str(name_or_path) / MODEL_FILE
            else:
                for folder in (given, runs_folder() / str(name_or_path)):
                    if folder.is_dir() and (stopped := Interrupted.of(folder)) is not None:
                        raise FileNotFoundError(str(stopped))
                raise FileNotFoundError(
                    f"no run {str(name_or_path)!r}: neither a model file nor a run in "
                    f"{runs_dir()} (`python -m capstone runs` lists them)"
                )
        return cls(path, ImageEmbedder.load(path, d=d))

    # -- what the run records ----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The run folder's name (or the model file's name outside a run folder)."""
        if self.path is None:
            return "(unsaved)"
        return self.path.parent.name if self.path.name == MODEL_FILE else self.path.stem

    @property
    def config(self) -> dict:
        """The training settings, as saved (empty for a model saved by hand)."""
        return dict(self.model.info.get("train", {}))

    @property
    def recipe(self) -> str | None:
        """The recipe it was trained with; runs from before recipes existed all trained the
        course's; None for a model saved by hand."""
        return self.config.get("recipe", "course" if self.config else None)

    @property
    def history(self) -> list[dict]:
        return list(self.model.info.get("history", []))

    @property
    def weights_sha256(self) -> str:
        """A hash of the weights: which model a saved report or cache belongs to."""
        h = hashlib.sha256()
        for p in self.model.parameters:
            h.update(np.ascontiguousarray(p.data).tobytes())
        return h.hexdigest()

    @property
    def in_runs_dir(self) -> bool:
        return self.path is not None and self.path.resolve().parent.parent == runs_dir().resolve()

    def saved_report(self) -> dict | None:
        """The run's ``metrics.json`` (from ``evaluate`` or ``demo``), if it scored these weights.

        None when there is none, it cannot be read, or it belongs to an older model of the run.
        """
        if self.path is None:
            return None
        try:
            saved = json.loads((self.path.parent / METRICS_FILE).read_text())
        except (OSError, ValueError):
            return None
        if isinstance(saved, dict) and saved.get("model_sha256") == self.weights_sha256:
            return saved
        return None

    def check(self, dataset: Dataset, *, other_data: bool = False) -> list[str]:
        """What differs between the run's training data and ``dataset``.

        The one compatibility test of a run and a dataset: the CLI calls it (``--other-data``),
        and `database`, `engine` and `evaluate` call it too. A dataset it passed (or accepted
        with ``other_data``) passes again without being told twice.

        Raises
        ------
        RunMismatch
            If anything differs and ``other_data`` is False. With ``other_data`` the
            differences are returned and kept in `warnings`.
        """
        instance("dataset", dataset, Dataset)
        if self.model.d != dataset.glove.dim:
            raise RunMismatch(
                f"run {self.name} ({self.path}) embeds into {self.model.d} dimensions, the word "
                f"vectors in use ({dataset.glove.source}) have {dataset.glove.dim}: was it "
                f"trained with other GloVe vectors? it records {self.model.info.get('glove')!r}"
            )
        info = self.model.info
        differences = run_differences(info, dataset.data.fingerprint, dataset.glove.source)
        differ = []
        if "data_fingerprint" in differences:
            trained_on, now = differences["data_fingerprint"]
            was = info.get("data_folder") or f"{info.get('data_source', '?')} data"
            differ.append(
                f"data: trained on {was} (fingerprint {trained_on}), this is "
                f"{dataset.files.captions.parent} (fingerprint {now})"
            )
        if "glove" in differences:
            glove, now = differences["glove"]
            differ.append(f"word vectors: trained with {glove}, these are {now}")
        seen = (dataset.data.fingerprint, dataset.glove.source)
        if seen == self._checked:
            return differ
        if differ and not other_data:
            raise RunMismatch(
                f"run {self.name} ({self.path}) does not match: "
                + "; ".join(differ)
                + ". Use the data it was trained on (--data, --glove), or pass --other-data to "
                "go on anyway (other_data=True in Python; its validation split then means "
                "nothing)"
            )
        self.warnings, self._checked = list(differ), seen
        return differ

    def validation_images(self, data) -> np.ndarray:
        """Indices into ``data`` of the run's validation images (sorted).

        From the COCO ids saved with the model; a model saved before splits were recorded
        re-derives its split from its seed, which is only right on its own data (`check`).
        Ids missing from ``data`` (other data) are left out.
        """
        ids = self.model.info.get("val_image_ids")
        if ids is None:
            config = self.config
            if "seed" not in config:
                raise RunMismatch(
                    f"run {self.name} ({self.path}) records no validation split and no seed: "
                    "it cannot tell its validation images; retrain it"
                )
            _, rows = split_images(
                data.n_images, val_fraction=config.get("val_fraction", 0.2), seed=config["seed"]
            )
            return rows
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(data.image_ids, ids)
        found = pos < data.n_images
        found[found] = data.image_ids[pos[found]] == ids[found]
        return np.sort(pos[found])

    def images(self, data, images: str = "validation") -> np.ndarray:
        """Indices of "validation" (the run's) or "all" images of ``data``."""
        if images not in IMAGE_SETS:
            raise ValueError(f"`images` must be one of {IMAGE_SETS}, got {images!r}")
        if images == "all":
            return np.arange(data.n_images)
        rows = self.validation_images(data)
        if not len(rows) and self.warnings:  # other data, accepted: none of it was seen
            message = (
                f"none of run {self.name}'s validation images is in this data: using all "
                f"{data.n_images:,} images"
            )
            self.warnings.append(message)
            return np.arange(data.n_images)
        if not len(rows):
            raise RunMismatch(
                f"none of run {self.name}'s validation images is in this data: "
                "search all images (--all-images) instead"
            )
        return rows

    # -- using it ----------------------------------------------------------------------------

    def database(
        self, dataset: Dataset, images: str = "validation", *, other_data: bool = False
    ) -> ImageDatabase:
        """The image database of the run over ``images``, cached beside a run's model.

        The cache (``database.npz``) is only a cache: it is rebuilt when the model, data or
        images changed, and a cache that cannot be read or written is warned about, not fatal.
        ``dataset`` must be the run's unless ``other_data`` (`check`).
        """
        self.check(dataset, other_data=other_data)
        rows = self.images(dataset.data, images)
        key = {
            "model_sha256": self.weights_sha256,
            "data_fingerprint": dataset.data.fingerprint,
            "images_sha256": hashlib.sha256(rows.tobytes()).hexdigest(),
        }
        cache = self.path.parent / "database.npz" if self.in_runs_dir else None
        if cache is not None and cache.is_file():
            try:
                db = ImageDatabase.load(cache, d=self.model.d)
                if all(db.info.get(k) == v for k, v in key.items()):
                    return db
            except (ArchiveError, OSError) as e:
                warnings.warn(f"rebuilding the database cache {cache}: {e}", stacklevel=2)
        data = dataset.data
        every = len(rows) == data.n_images  # rows are sorted: all of them, in order
        descriptors = data.descriptors if every else data.descriptors[rows]  # no N x 512 copy
        db = ImageDatabase.build(self.model, data.image_ids[rows], descriptors)
        db.info.update(key)
        if cache is not None:
            try:
                db.save(cache, overwrite=True)  # a cache of the run's model: always rebuildable
            except OSError as e:
                warnings.warn(f"could not cache the database in {cache}: {e}", stacklevel=2)
        return db

    def engine(
        self, dataset: Dataset, images: str = "validation", *, other_data: bool = False
    ) -> SearchEngine:
        """A `SearchEngine` over the run's validation images (the course's database) or all.

        ``dataset`` must be the run's unless ``other_data`` (`check`).
        """
        database = self.database(dataset, images, other_data=other_data)
        return SearchEngine(dataset, self.model, database)

    def evaluate(self, dataset: Dataset, *, other_data: bool = False) -> dict:
        """`capstone.evaluation.metrics.evaluation_report` on the run's validation images.

        ``dataset`` must be the run's unless ``other_data`` (`check`).
        """
        self.check(dataset, other_data=other_data)
        if dataset.caption_embeddings is None:
            raise ValueError("evaluating needs the caption embeddings: load the dataset with "
                             "embed_captions=True")  # fmt: skip
        rows, seed = self.images(dataset.data, "validation"), self.config.get("seed", 0)
        report = evaluation_report(
            self.model,
            dataset.data,
            dataset.caption_embeddings,
            rows,
            evaluation_triples(dataset.data, rows, seed, dataset.caption_embeddings),
            seed=seed,
        )
        report["run"] = self.name
        report["model"] = str(self.path) if self.path is not None else None
        if self.warnings:
            report["warnings"] = list(self.warnings)
        return report


@dataclass
class Trained(TrainResult):
    """What `train` returns: the `capstone.training.train.TrainResult`, and its `Run`."""

    @property
    def run(self) -> Run:
        """The trained model as a `Run`: evaluate and search on its split.

        With real data (shown, not run as a test)::

            engine = result.run.engine(dataset)
        """
        return Run(self.path, self.model)


@wraps(train_model, assigned=())  # its signature (inspect.signature follows __wrapped__)
def train(*args, **kwargs) -> Trained:
    """`capstone.training.train.train`, whose result also gives the trained `Run` (``.run``).

    This is ``capstone.train``. Training sits below runs and returns the plain `TrainResult`
    (`capstone.training`); this adds ``result.run``. The arguments, errors and the result's
    other attributes are `capstone.training.train.train`'s.

    With real data (shown, not run as a test)::

        result = train(ds.data, ds.caption_embeddings, TrainConfig(epochs=5))
        result.run.evaluate(ds)
    """
    return Trained(**vars(train_model(*args, **kwargs)))
