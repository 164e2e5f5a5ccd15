"""A collection: your own photos, searchable by text with a trained run (as rclip does).

`index_folder` describes the photos of a folder with ResNet-18 (`capstone.photos.describer`),
embeds the descriptors with a run's model, and keeps one row per photo (path, file size and
modification time, descriptor, unit embedding, model) in a SQLite database
(``<data home>/collections/<name>.db``, `capstone.search.store`). Indexing again describes only
new or changed files (another size or modification time) and drops removed ones; every batch
is committed as it is described, so an interrupted indexing keeps every photo it described and
the work per photo does not grow with the collection. Photos under a folder that cannot be
listed keep their rows. A collection of an earlier version (``<name>.npz``) is migrated once.

A query is then a unit vector q in the caption space (a text, through the run's text side)
and the answer the top k of ``E q`` over the collection's embeddings E
(`capstone.search.store.Collection.query`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capstone.common.archive import ArchiveError, load_archive
from capstone.common.checks import count
from capstone.common.locks import holding
from capstone.common.progress import Progress
from capstone.data.paths import data_home
from capstone.embeddings.image import ImageEmbedder
from capstone.photos.pool import DescribedBatch
from capstone.search.store import Collection, CollectionError, SearchMatrix

__all__ = [
    "Collection",
    "CollectionError",
    "DescribeBatches",
    "IndexReport",
    "SearchMatrix",
    "collection_file",
    "in_one_process",
    "index_folder",
    "migrate",
]

LEGACY_KIND = "capstone.collection"  # the .npz archives of earlier versions
_LEGACY_ARRAYS = ("paths", "sizes", "mtimes", "descriptors", "embeddings")


def collection_file(name: str) -> Path:
    """Where the collection ``name`` lives: ``<data home>/collections/<name>.db``."""
    if not name or name != Path(name).name or name.startswith("."):
        raise ValueError(f"a collection name is a plain file name (--name), got {name!r}")
    return data_home() / "collections" / f"{name}.db"


def _held(database: Path):
    """One writer per collection: an OS lock on ``<database>.lock``, refused at once."""
    return holding(
        database.with_name(database.name + ".lock"),
        f"collection {database.stem} ({database})",
        "an indexing",
        "wait for it to finish, or index into another collection (--name)",
    )


def _migrate(database: Path) -> int | None:
    """`migrate`, the collection held."""
    legacy = database.with_suffix(".npz")
    if database.exists() or not legacy.is_file():
        return None
    arrays, meta = load_archive(legacy, kind=LEGACY_KIND, required=_LEGACY_ARRAYS)
    n = len(arrays["paths"])
    descriptors, embeddings = arrays["descriptors"], arrays["embeddings"]
    if (not isinstance(meta.get("folder"), str) or any(len(arrays[a]) != n for a in _LEGACY_ARRAYS)
            or embeddings.ndim != 2 or descriptors.shape[1:] != (512,)):  # fmt: skip
        raise ArchiveError(f"{legacy}: not a collection this version can read (its folder or "
                           "arrays do not match); delete it or choose another --name")  # fmt: skip
    info = {"run": meta.get("run"), "model_sha256": meta.get("model_sha256")}

    def fill(collection: Collection) -> None:
        collection.add(arrays["paths"].tolist(), arrays["sizes"], arrays["mtimes"],
                       descriptors.astype(np.float32), embeddings.astype(np.float32))  # fmt: skip

    Collection.create(database, Path(meta["folder"]), embeddings.shape[1], info, fill).close()
    return n


def migrate(database: str | os.PathLike) -> int | None:
    """Make ``<name>.db`` from the ``<name>.npz`` archive of an earlier version, once.

    The archive is left as it was (delete it when you like); the database, written whole under
    another name and then renamed, takes its place from then on.

    Returns
    -------
    int or None
        The number of photos migrated; None when there was nothing to migrate (the database
        exists, or there is no archive).

    Raises
    ------
    capstone.common.archive.ArchiveError
        If the archive is not a collection this version can read.
    capstone.common.locks.FolderLocked
        If an indexing holds the collection.
    """
    database = Path(database)
    if database.exists() or not database.with_suffix(".npz").is_file():
        return None
    with _held(database):
        return _migrate(database)


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
    """What one indexing did.

    ``kept``: photos under folders that could not be listed, whose rows stay as they were;
    ``migrated``: the photos of an earlier version's archive moved into the database first.
    """

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    kept: int = 0
    migrated: int | None = None
    failures: list[tuple[Path, str]] = field(default_factory=list)


def _stat(folder: Path, photos: list[Path], failures: list[tuple[Path, str]]):
    """{path relative to ``folder``: (size, mtime in ns)} of the photos that can be stat'ed;
    each one that cannot (a broken link, a file gone meanwhile) goes to ``failures``."""
    found = {}
    for photo in photos:
        try:
            info = photo.stat()
        except OSError as e:
            failures.append((photo, f"cannot be read ({e.strerror or e})"))
            continue
        # relative to the folder as given: a symlinked subfolder may point anywhere
        found[photo.relative_to(folder).as_posix()] = (info.st_size, info.st_mtime_ns)
    return found


def index_folder(
    folder: str | os.PathLike,
    database: str | os.PathLike,
    model: ImageEmbedder,
    model_info: dict,
    describe_batches: DescribeBatches,
    photos: list[Path],
    *,
    unlisted: Sequence[str | os.PathLike] = (),
    progress: bool = True,
) -> tuple[Collection | None, IndexReport]:
    """Bring the collection in ``database`` up to date with ``photos`` of ``folder``.

    Parameters
    ----------
    folder : path-like
        The folder the photos are in (paths are kept relative to it).
    database : path-like
        The collection file (``collection_file``); created once it holds a photo, or
        migrated from the ``.npz`` beside it (`migrate`).
    model : ImageEmbedder
        The run's model: descriptors -> unit embeddings.
    model_info : dict
        ``run`` and ``model_sha256``; when the collection's differ, every kept embedding is
        recomputed from its descriptor (no photo is described again for that).
    describe_batches : DescribeBatches
        Describes the photos to describe, batch by batch (`in_one_process`, or workers);
        each batch is committed as it comes.
    photos : list[Path]
        The photos of the folder now (`capstone.photos.describer.find_photos`).
    unlisted : Sequence[path-like]
        Subfolders that could not be listed (``find_photos``'s ``unlisted``): the rows of the
        photos under them are kept, not dropped as removed.
    progress : bool
        A progress bar over the photos to describe, on stderr.

    Returns
    -------
    (Collection or None, IndexReport)
        The collection, open (close it); None when no photo could be described into a new
        collection (none is written).

    Raises
    ------
    capstone.common.locks.FolderLocked
        If another indexing holds this collection (``<database>.lock``): one writer at a time.
    """
    database = Path(database)
    with _held(database):
        report = IndexReport(migrated=_migrate(database))
        collection = _index(folder, database, model, model_info, describe_batches, photos,
                            unlisted, report, progress)  # fmt: skip
        return collection, report


def _under(path: str, folders: list[str]) -> bool:
    return any(path.startswith(f + "/") for f in folders)


def _index(folder, database: Path, model, model_info, describe_batches, photos, unlisted,
           report: IndexReport, progress: bool) -> Collection | None:  # fmt: skip
    """`index_folder`, its collection held."""
    given = Path(folder).expanduser().absolute()
    collection = Collection.open(database) if database.is_file() else None
    try:
        if collection is not None and collection.folder != given.resolve():
            raise ValueError(f"{database} indexes {collection.folder}, not {given.resolve()}: "
                             "choose another --name")  # fmt: skip
        now = _stat(given, [Path(p).absolute() for p in photos], report.failures)
        old = collection.stats() if collection is not None else {}
        hidden = [Path(u).absolute().relative_to(given).as_posix() for u in unlisted]
        kept = [p for p in old if p not in now and _under(p, hidden)]
        gone = [p for p in old if p not in now and not _under(p, hidden)]
        todo = [p for p in now if old.get(p) != now[p]]
        report.kept, report.removed = len(kept), len(gone)
        report.unchanged = len(old) - len(kept) - len(gone) - sum(p in old for p in todo)
        if collection is not None:
            # a changed photo's old row is stale: it goes now, its new one comes with its batch
            collection.remove(gone + [p for p in todo if p in old])
            if collection.info["model_sha256"] != str(model_info.get("model_sha256")):
                collection.reembed(model.embed, model_info)
        where = {given / p: p for p in todo}
        bar = Progress(enabled=progress)
        bar.start(f"describing {len(todo):,} photos", len(todo))
        done = 0
        for batch in describe_batches(list(where)):
            report.failures.extend(batch.failures)
            done += len(batch.paths) + len(batch.failures)
            bar.update(done)
            rows = [where[Path(p).absolute()] for p in batch.paths]
            if not rows:
                continue  # a batch of unreadable files: a new collection is only made of photos
            if collection is None:
                collection = Collection.create(database, given.resolve(), model.d, model_info)
            collection.add(rows, [now[p][0] for p in rows], [now[p][1] for p in rows],
                           batch.descriptors, model.embed(batch.descriptors))  # fmt: skip
            report.changed += sum(p in old for p in rows)
            report.added += sum(p not in old for p in rows)
        bar.finish(f"described {report.added + report.changed:,} of {len(todo):,} photos")
    except BaseException:
        if collection is not None:
            collection.close()
        raise
    return collection
