"""A collection: your own photos, searchable by text with a trained run (as rclip does).

`index_folder` describes the photos of a folder with ResNet-18 (`capstone.photos.describer`),
embeds the descriptors with a run's model, and keeps paths, file sizes and modification times,
descriptors and unit embeddings in one archive (``<data home>/collections/<name>.npz``,
`capstone.common.archive`: pickle-free, written atomically). Indexing again describes only
new or changed files (another size or modification time) and drops removed ones; the archive
is saved after every batch, so an interrupted indexing keeps every photo it described.

A query is then a unit vector q in the caption space (a text, through the run's text side)
and the answer the top k of ``E q`` over the collection's embeddings E.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capstone.common.archive import ArchiveError, load_archive, save_archive
from capstone.common.checks import count
from capstone.common.locks import holding
from capstone.common.progress import Progress
from capstone.common.vectors import normalize_rows
from capstone.data.paths import data_home
from capstone.embeddings.image import ImageEmbedder
from capstone.search.database import best_matches

__all__ = [
    "COLLECTION_KIND",
    "Collection",
    "DescribeBatches",
    "DescribedBatch",
    "IndexReport",
    "collection_file",
    "in_one_process",
    "index_folder",
]

COLLECTION_KIND = "capstone.collection"
_ARRAYS = ("paths", "sizes", "mtimes", "descriptors", "embeddings")


def collection_file(name: str) -> Path:
    """Where the collection ``name`` lives: ``<data home>/collections/<name>.npz``."""
    if not name or name != Path(name).name or name.startswith("."):
        raise ValueError(f"a collection name is a plain file name (--name), got {name!r}")
    return data_home() / "collections" / f"{name}.npz"


@dataclass
class Collection:
    """The indexed photos of one folder.

    Attributes
    ----------
    folder : Path
        The folder indexed (absolute).
    paths : list[str], length n
        Each photo's path relative to ``folder``.
    sizes, mtimes : numpy.ndarray, shape (n,), int64
        File size in bytes and modification time in ns, when described.
    descriptors : numpy.ndarray, shape (n, 512), float32
    embeddings : numpy.ndarray, shape (n, d), float32
        Unit rows: the descriptors through the model of ``info["model_sha256"]``.
    info : dict
        ``run`` and ``model_sha256`` of the model that made the embeddings.
    """

    folder: Path
    paths: list[str]
    sizes: np.ndarray
    mtimes: np.ndarray
    descriptors: np.ndarray
    embeddings: np.ndarray
    info: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, folder: Path, d: int, info: dict) -> Collection:
        no = np.zeros(0, dtype=np.int64)
        return cls(Path(folder), [], no, no, np.zeros((0, 512), np.float32),
                   np.zeros((0, d), np.float32), dict(info))  # fmt: skip

    def __len__(self) -> int:
        return len(self.paths)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the archive atomically (replacing the previous state of this collection)."""
        arrays = {
            "paths": np.array(self.paths, dtype=str),
            "sizes": self.sizes,
            "mtimes": self.mtimes,
            "descriptors": self.descriptors,
            "embeddings": self.embeddings,
        }
        meta = {**self.info, "folder": str(self.folder), "n_photos": len(self)}
        return save_archive(path, arrays, meta, kind=COLLECTION_KIND, overwrite=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Collection:
        """Read a collection `save` wrote (`capstone.common.archive.ArchiveError` if not one)."""
        arrays, meta = load_archive(path, kind=COLLECTION_KIND, required=_ARRAYS)
        n = len(arrays["paths"])
        shapes_agree = all(len(arrays[name]) == n for name in _ARRAYS) and all(
            arrays[name].ndim == 2 for name in ("descriptors", "embeddings")
        )
        if not isinstance(meta.get("folder"), str) or not shapes_agree:
            raise ArchiveError(
                f"{path}: not a collection this version can read (its folder or arrays do not "
                "match); delete it or choose another --name"
            )
        info = {k: v for k, v in meta.items()
                if k not in ("kind", "format_version", "folder", "n_photos")}  # fmt: skip
        return cls(Path(meta["folder"]), arrays["paths"].tolist(), arrays["sizes"],
                   arrays["mtimes"], arrays["descriptors"], arrays["embeddings"], info)  # fmt: skip

    def _take(self, rows: np.ndarray) -> Collection:
        return Collection(self.folder, [self.paths[i] for i in rows], self.sizes[rows],
                          self.mtimes[rows], self.descriptors[rows], self.embeddings[rows],
                          self.info)  # fmt: skip

    def _extend(self, paths, sizes, mtimes, descriptors, embeddings) -> None:
        self.paths = self.paths + list(paths)
        self.sizes = np.concatenate([self.sizes, sizes])
        self.mtimes = np.concatenate([self.mtimes, mtimes])
        self.descriptors = np.concatenate([self.descriptors, descriptors])
        self.embeddings = np.concatenate([self.embeddings, embeddings])

    def query(self, q: np.ndarray, k: int = 10) -> list[tuple[Path, float]]:
        """The ``k`` photos whose embeddings have the highest cosine with the (d,) ``q``.

        The top k of `capstone.search.database.best_matches`, as an `ImageDatabase` query
        takes them, over the collection's rows.
        """
        k = count("k", k)
        scores = self.embeddings @ normalize_rows(np.asarray(q, dtype=np.float32))
        (matches,) = best_matches(scores[None], np.arange(len(self)), k)
        return [(self.folder / self.paths[m.image_id], m.score) for m in matches]


@dataclass
class DescribedBatch:
    """Some photos described, as a describer hands them to the indexing loop.

    Attributes
    ----------
    paths : list[Path]
        The photos described; row i of ``descriptors`` is ``paths[i]``.
    descriptors : numpy.ndarray, shape (len(paths), 512), float32
    failures : list[tuple[Path, str]]
        The photos of this batch that could not be described, with the reason in plain words.
    """

    paths: list[Path]
    descriptors: np.ndarray
    failures: list[tuple[Path, str]] = field(default_factory=list)


DescribeBatches = Callable[[list[Path]], Iterator[DescribedBatch]]
"""``describe_batches(photos)``: every photo of ``photos`` described, in batches yielded as
they are done (in any order); each photo is in exactly one batch's ``paths`` or ``failures``.
The indexing loop commits each batch before asking for the next."""

Describe = Callable[[list[Path]], tuple[np.ndarray, list[Path], list[tuple[Path, str]]]]


def in_one_process(describe: Describe, batch_size: int = 32) -> DescribeBatches:
    """The `DescribeBatches` that describes ``batch_size`` photos at a time in this process.

    Parameters
    ----------
    describe : callable
        ``describe(paths) -> (descriptors (n, 512), described paths, failures)``, e.g.
        ``partial(PhotoDescriber.describe_paths, progress=False)``
        (`capstone.photos.describer`).
    batch_size : int
        Photos per batch: per commit of the collection.
    """
    batch_size = count("batch_size", batch_size)

    def describe_batches(photos: list[Path]) -> Iterator[DescribedBatch]:
        for start in range(0, len(photos), batch_size):
            descriptors, described, failures = describe(photos[start : start + batch_size])
            yield DescribedBatch(list(described), descriptors, list(failures))

    return describe_batches


@dataclass
class IndexReport:
    """What one indexing did."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    failures: list[tuple[Path, str]] = field(default_factory=list)


def _stat(folder: Path, photos: list[Path], failures: list[tuple[Path, str]]):
    """(paths relative to ``folder``, sizes, mtimes) of the photos that can be stat'ed; each one
    that cannot (a broken link, a file gone meanwhile) goes to ``failures``."""
    relative, sizes, mtimes = [], [], []
    for photo in photos:
        try:
            info = photo.stat()
        except OSError as e:
            failures.append((photo, f"cannot be read ({e.strerror or e})"))
            continue
        # relative to the folder as given: a symlinked subfolder may point anywhere
        relative.append(photo.relative_to(folder).as_posix())
        sizes.append(info.st_size)
        mtimes.append(info.st_mtime_ns)
    return relative, np.array(sizes, dtype=np.int64), np.array(mtimes, dtype=np.int64)


def index_folder(
    folder: str | os.PathLike,
    archive: str | os.PathLike,
    model: ImageEmbedder,
    model_info: dict,
    describe: Callable[[list[Path]], tuple[np.ndarray, list[Path], list[tuple[Path, str]]]],
    photos: list[Path],
    *,
    batch_size: int = 32,
    progress: bool = True,
) -> tuple[Collection, IndexReport]:
    """Bring the collection in ``archive`` up to date with ``photos`` of ``folder``.

    Parameters
    ----------
    folder : path-like
        The folder the photos are in (paths are kept relative to it).
    archive : path-like
        The collection file; created if absent.
    model : ImageEmbedder
        The run's model: descriptors -> unit embeddings.
    model_info : dict
        ``run`` and ``model_sha256``; when the archive's differ, every kept embedding is
        recomputed from its descriptor (no photo is described again for that).
    describe : callable
        ``describe(paths) -> (descriptors (n, 512), described paths, failures)``, e.g.
        ``partial(PhotoDescriber.describe_paths, progress=False)``
        (`capstone.photos.describer`).
    photos : list[Path]
        The photos of the folder now (`capstone.photos.describer.find_photos`).
    batch_size : int
        Photos described between two saves of the archive.
    progress : bool
        A progress bar over the photos to describe, on stderr.

    Returns
    -------
    (Collection, IndexReport)
        A new ``archive`` is written only once it holds a photo.

    Raises
    ------
    capstone.common.locks.FolderLocked
        If another indexing holds this collection (``<archive>.lock``): one writer at a time.
    """
    archive = Path(archive)
    with holding(
        archive.with_name(archive.name + ".lock"),
        f"collection {archive.stem} ({archive})",
        "an indexing",
        "wait for it to finish, or index into another collection (--name)",
    ):
        return _index(folder, archive, model, model_info, describe, photos,
                      batch_size=batch_size, progress=progress)  # fmt: skip


def _index(folder, archive: Path, model, model_info, describe, photos, *, batch_size, progress):
    """`index_folder`, its collection held."""
    given = Path(folder).expanduser().absolute()
    folder = given.resolve()
    batch_size = count("batch_size", batch_size)
    report = IndexReport()
    if archive.is_file():
        collection = Collection.load(archive)
        if collection.folder != folder:
            raise ValueError(
                f"{archive} indexes {collection.folder}, not {folder}: choose another --name"
            )
    else:
        collection = Collection.empty(folder, model.d, model_info)
    paths, sizes, mtimes = _stat(given, [Path(p).absolute() for p in photos], report.failures)
    now = {p: (s, m) for p, s, m in zip(paths, sizes.tolist(), mtimes.tolist(), strict=True)}
    old = dict(zip(collection.paths, zip(collection.sizes.tolist(), collection.mtimes.tolist(),
                                         strict=True), strict=True))  # fmt: skip
    keep = np.array([now.get(p) == old[p] for p in collection.paths], dtype=bool)
    report.unchanged = int(keep.sum())
    report.removed = sum(p not in now for p in collection.paths)
    collection = collection._take(np.flatnonzero(keep))
    if collection.info.get("model_sha256") != model_info.get("model_sha256"):
        collection.embeddings = model.embed(collection.descriptors)
        collection.info = dict(model_info)
    archive.parent.mkdir(parents=True, exist_ok=True)
    if archive.is_file():  # removals and a new model take effect even if nothing is new
        collection.save(archive)
    todo = [i for i, p in enumerate(paths) if old.get(p) != now[p]]
    bar = Progress(enabled=progress)
    bar.start(f"describing {len(todo):,} photos", len(todo))
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        descriptors, described, failures = describe([given / paths[i] for i in rows])
        report.failures.extend(failures)
        done = {Path(d).absolute().relative_to(given).as_posix() for d in described}
        rows = [i for i in rows if paths[i] in done]
        if not rows:
            continue  # a batch of unreadable files: a new collection is only made of photos
        collection._extend([paths[i] for i in rows], sizes[rows], mtimes[rows],
                           descriptors, model.embed(descriptors))  # fmt: skip
        collection.save(archive)
        report.changed += sum(paths[i] in old for i in rows)
        report.added += sum(paths[i] not in old for i in rows)
        bar.update(min(start + batch_size, len(todo)))
    bar.finish(f"described {report.added + report.changed:,} of {len(todo):,} photos")
    return collection, report
