"""Photos and collections: ``describe`` (ResNet-18 descriptors of photo files), ``index`` (a
folder of photos made searchable by text) and ``search --collection``; the ResNet-18 that
every photo flag and photo term loads."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np

from capstone.common.archive import atomic_write
from capstone.common.progress import Progress
from capstone.frontends.cli.args import (
    add_json_arg,
    add_weights_arg,
    command,
    folder_name,
    integer,
    load_run,
    output_file,
    query_terms,
    run_name,
)
from capstone.frontends.cli.output import Result, ignored_line, note
from capstone.runs import Run
from capstone.search.engine import Describe, ignored_words, query_vector
from capstone.search.terms import Term

__all__ = [
    "add_parsers",
    "add_workers_args",
    "cmd_describe",
    "cmd_index",
    "describe_all",
    "describe_photo",
    "describe_photo_terms",
    "load_describer",
    "search_collection",
    "weights_file",
]


def weights_file(weights: Path | None, *, download: bool = True, progress: bool = True) -> Path:
    """The ResNet-18 weights file of ``--weights``, else the cached one, else one downloaded now
    if ``download`` (with a progress bar if ``progress``);
    `capstone.photos.weights.WeightsUnavailable` when there is none."""
    from capstone.photos.weights import locate_weights

    return locate_weights(weights, download=download, progress=download and progress)


def load_describer(weights: Path | None, *, download: bool = True, progress: bool = True):
    """The ResNet-18 (`capstone.photos.describer.PhotoDescriber`) of `weights_file`."""
    from capstone.photos.describer import PhotoDescriber  # the network loads only when asked

    return PhotoDescriber(weights_file(weights, download=download, progress=progress))


def add_workers_args(p) -> None:
    """``--workers N`` (local processes, default every core) or ``--dask ADDRESS``."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--workers",
        type=integer(1),
        metavar="N",
        help="describe on N processes, one BLAS thread each (default: every core)",
    )
    group.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="describe on a Dask cluster's workers (tcp://SCHEDULER:8786); they read the "
        "photos and weights at the same paths (a shared folder)",
    )


def describe_photo_terms(
    terms: list[Term], weights: Path | None, *, progress: bool
) -> Describe | None:
    """The photo terms' descriptors, computed now (before any data loads, so a missing weight
    file is said at once), as a lookup; None when no term is a photo."""
    photos = {t for _, t in terms if isinstance(t, Path)}
    if not photos:
        return None
    describer = load_describer(weights, progress=progress)
    return {photo: describer.describe(photo) for photo in photos}.__getitem__


def describe_photo(photo: Path | None, weights: Path | None, *, progress: bool):
    """The (1, 512) descriptor of the photo of ``--image``/``--photo`` (described before any
    data loads), or None without one."""
    if photo is None:
        return None
    return load_describer(weights, progress=progress).describe(photo)


def add_parsers(sub) -> None:
    """The ``describe`` and ``index`` commands."""
    p = command(
        sub,
        "describe",
        cmd_describe,
        help="ResNet-18 descriptors of photos (the course's 512-d features)",
        description="Describe photos with torchvision's ResNet-18 (ImageNet weights), computed "
        "in NumPy; --out writes them in the course's resnet18_features.pkl format.",
    )
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    p.add_argument(
        "--out",
        type=output_file(".pkl", replace=False),
        metavar="FILE.pkl",
        help="write the descriptors (a new file)",
    )
    add_json_arg(p, "the result")
    add_weights_arg(p)
    add_workers_args(p)

    p = command(
        sub,
        "index",
        cmd_index,
        help="make a folder of photos searchable by text (a collection)",
        description="Describe every photo of DIR (recursively) and embed it with a run's model; "
        "again later, only new or changed photos are described. Then: "
        'python -m capstone search "TEXT" --collection NAME',
    )
    p.add_argument("folder", metavar="DIR")
    p.add_argument(
        "--name",
        type=folder_name("collection"),
        metavar="NAME",
        help="collection name (default: the folder's name)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--run", type=run_name, metavar="NAME", help="the run's model (newest)")
    group.add_argument("--model", metavar="FILE", help="use this model.npz")
    add_weights_arg(p)
    add_workers_args(p)


def describe_all(
    photos: list[Path], weights: Path, *, workers: int | None, dask: str | None, progress: bool
) -> tuple[np.ndarray, list[Path], list[tuple[Path, str]]]:
    """``photos`` described on ``workers`` processes or the ``dask`` cluster
    (`capstone.photos.pool.describe_batches`), in the order given: (descriptors (n, 512),
    described paths, failures)."""
    from capstone.photos.pool import describe_batches
    from capstone.photos.resnet import DESCRIPTOR_SIZE

    bar = Progress(enabled=progress)
    bar.start("describing photos", len(photos))
    start = time.perf_counter()
    chunks, described, failures = [np.empty((0, DESCRIPTOR_SIZE), np.float32)], [], []
    batches = describe_batches(photos, weights, workers=workers, dask=dask, ordered=True)
    for batch in batches:
        chunks.append(batch.descriptors)
        described += batch.paths
        failures += batch.failures
        bar.update(len(described) + len(failures))
    bar.finish(
        f"described {len(described)} photo(s) in {time.perf_counter() - start:.1f} s"
        + (f"; {len(failures)} could not be read" if failures else "")
    )
    return np.concatenate(chunks), described, failures


def cmd_describe(
    *,
    photos: list[Path],
    out: Path | None,
    as_json: bool,
    weights: Path | None,
    workers: int | None,
    dask: str | None,
) -> Result:
    """``describe``: the descriptors of ``photos`` (on ``workers`` processes or the ``dask``
    cluster), written to ``out`` (the course's format) if given; photos that cannot be read
    are skipped, and said."""
    found = weights_file(weights, progress=not as_json)
    descriptors, described, failures = describe_all(
        photos, found, workers=workers, dask=dask, progress=not as_json
    )
    for path, reason in failures:
        note(f"skipped {path}: {reason}")
    if not described:
        raise ValueError("no photo could be described")
    if out is not None:
        # the course's format: int id -> (1, 512) float32, ids 1..n in the order given
        features = {i: descriptors[i - 1 : i] for i in range(1, len(described) + 1)}
        atomic_write(out, lambda f: pickle.dump(features, f, protocol=4))
    rows = [
        {"id": i, "path": str(path), "norm": float(np.linalg.norm(descriptors[i - 1]))}
        for i, path in enumerate(described, 1)
    ]
    data = {
        "out": str(out) if out else None,
        "photos": rows,
        "skipped": [{"path": str(p), "reason": r} for p, r in failures],
    }
    lines = tuple(f"{row['id']:>5}  |x| {row['norm']:7.2f}  {row['path']}" for row in rows)
    notes = ()
    if out is not None and not as_json:
        notes = (f"wrote {len(rows)} descriptors to {out} (id -> (1, 512) float32, the "
                 "course's resnet18_features.pkl format)",)  # fmt: skip
    return Result(lines, data, notes)


def cmd_index(
    *,
    folder: str,
    name: str | None,
    run: str | None,
    model: str | None,
    weights: Path | None,
    workers: int | None,
    dask: str | None,
) -> Result:
    """``index``: the collection of the photos of ``folder`` (named ``name``, else after the
    folder), embedded by the run's model; only new or changed photos are described (on
    ``workers`` processes or the ``dask`` cluster)."""
    from capstone.photos import pool
    from capstone.photos.describer import find_photos
    from capstone.search.collection import collection_file, index_folder

    found = Run.load(model or run)
    folder = Path(folder).expanduser()
    unlisted: list[tuple[Path, str]] = []
    photos = find_photos(folder, unlisted)
    name = name or folder.resolve().name
    database = collection_file(name)

    def describe_batches(paths: list[Path]):
        """Batches as they are done, on every core or the cluster; the weights are looked for
        only when a photo needs describing (maybe never)."""
        if not paths:
            return iter(())
        return pool.describe_batches(paths, weights_file(weights), workers=workers, dask=dask)

    info = {"run": found.name, "model_sha256": found.weights_sha256}
    collection, report = index_folder(folder, database, found.model, info,
                                      describe_batches, photos,
                                      unlisted=[p for p, _ in unlisted])  # fmt: skip
    if report.migrated is not None:
        note(_migrated(name, database, report.migrated))
    for path, reason in unlisted:
        note(f"warning: cannot list {path} ({reason}): its photos in the collection are kept "
             "as they were")  # fmt: skip
    for path, reason in report.failures:
        note(f"skipped {path}: {reason}")
    if collection is None:
        raise ValueError(f"no photo of {folder} could be described: collection {name!r} "
                         "was not made")  # fmt: skip
    with collection:
        return Result((
            f"collection {name}: {len(collection):,} photos of {collection.folder} in "
            f"{database} ({report.added} added, {report.changed} changed, {report.removed} "
            f"removed, {report.unchanged} unchanged, {len(report.failures)} skipped"
            + (f", {report.kept} kept in folders it cannot list" if report.kept else "")
            + f'); search it with python -m capstone search "TEXT" --collection {name}',
        ))  # fmt: skip


def _migrated(name: str, database: Path, n: int) -> str:
    legacy = database.with_suffix(".npz")
    return (f"collection {name}: moved {n:,} photos from {legacy} into {database} (once; "
            f"{legacy.name} is left as it was: delete it when you like)")  # fmt: skip


def search_collection(
    name: str,
    query: str | None,
    add: list[str],
    subtract: list[str],
    *,
    k: int,
    paths: bool,
    weights: Path | None,
    as_json: bool,
    exact: bool = False,
    source: dict,
) -> Result:
    """``search --collection``: the ``k`` photos of collection ``name`` best matching the
    query (``query``, ``add`` and ``subtract`` terms), embedded by the model of the run that
    ``source`` (`load_run`'s flags) names; ``paths``: the bare paths, one a line; ``exact``:
    scan every photo even where the approximate index would answer."""
    from capstone.search.collection import Collection, collection_file, migrate

    database = collection_file(name)
    migrated = migrate(database)
    if migrated is not None:
        note(_migrated(name, database, migrated))
    if not database.is_file():
        raise FileNotFoundError(
            f"no collection {name!r} ({database}): index a folder first, "
            f"python -m capstone index DIR --name {name}"
        )
    with Collection.open(database) as collection:
        return _search(collection, name, query, add, subtract, k=k, paths=paths,
                       weights=weights, as_json=as_json, exact=exact, source=source)  # fmt: skip


def _search(collection, name, query, add, subtract, *, k, paths, weights, as_json, exact,
            source):  # fmt: skip
    """`search_collection` in the open ``collection``."""
    if not len(collection):
        raise ValueError(f"collection {name!r} ({collection.path}) holds no photos")
    terms = query_terms(query, add, subtract)
    describe = describe_photo_terms(terms, weights, progress=not as_json)
    run, ds = load_run(**source, verbose=not as_json, embed_captions=False)
    # another run's model: its embeddings of the descriptors, not the stored ones
    embed = None if collection.info["model_sha256"] == run.weights_sha256 else run.model.embed
    q = query_vector(run.model, ds.text, terms, describe)
    found = collection.query(q, k, embed=embed, exact=exact, progress=not as_json)
    ignored = ignored_words(ds.text, terms)
    data = {
        "collection": name,
        "run": run.name,
        "folder": str(collection.folder),
        "ignored_words": ignored,
        "results": [{"rank": i, "path": str(p), "score": s} for i, (p, s) in enumerate(found, 1)],
    }
    if paths:
        return Result(("\n".join(str(p) for p, _ in found),), data)
    lines = ignored_line(ignored)
    lines.extend(f"#{i:<3} {score:6.3f}  {path}" for i, (path, score) in enumerate(found, 1))
    return Result(tuple(lines), data)
