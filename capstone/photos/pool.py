"""Describing many photos on every core, or on the machines of a Dask cluster.

>>> from capstone.photos.pool import describe_batches
>>> for batch in describe_batches(paths, weights, workers=4):  # doctest: +SKIP
...     save(batch.paths, batch.descriptors)                   # (n, 512) float32 rows
...     report(batch.failures)                                 # [(path, reason), ...]

The photos are cut into batches of ``batch_size`` paths; each batch is described by
`capstone.photos.describer.PhotoDescriber.describe_paths` in a worker that loaded the weights
once, with one BLAS thread (the workers, not BLAS, use the cores: decoding, im2col and pooling
run on one thread, so processes scale where BLAS threads do not). A photo's descriptor does not
depend on the batch or the process it was computed in: the results are those of one process,
bit for bit.

* ``workers=1``: in this process (BLAS free to use every core), as `describe_paths` does.
* ``workers=N``: N local processes (started with ``spawn``: OpenBLAS's threads do not survive
  a ``fork``).
* ``dask="tcp://HOST:8786"``: the workers of a ``dask.distributed`` cluster (the ``cluster``
  extra). Each worker reads the photos and the weights at their absolute paths here, so they must be
  in a folder shared at the same path on every machine; a worker loads the weights once (cached
  by their sha256, checked against this machine's copy). A lost worker's batches are run again
  by the scheduler elsewhere, so none is lost; a photo a worker cannot read is a failure naming
  the photo and the worker.

Batches come back as they are done (``ordered=False``), or in the order of ``paths``.
At most a few batches per worker are in flight at once, so any number of photos fits in memory.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from capstone.common.checks import count
from capstone.photos.describer import PhotoDescriber

__all__ = [
    "DASK_TIMEOUT",
    "DaskUnavailable",
    "DescribedBatch",
    "default_workers",
    "describe_batches",
]

#: seconds to wait for a Dask scheduler to answer before saying it cannot be reached
DASK_TIMEOUT = 10
#: batches in flight per worker: one running, the next ones waiting, so no worker idles
_AHEAD = 3


class DaskUnavailable(ValueError):
    """``--dask`` was given, but the scheduler cannot be reached (or Dask is not installed)."""


@dataclass(frozen=True)
class DescribedBatch:
    """One batch of photos, described.

    Attributes
    ----------
    paths : list[pathlib.Path]
        The photos described, in the order given.
    descriptors : numpy.ndarray, shape-(len(paths), 512), float32
        Row i describes ``paths[i]``.
    failures : list[tuple[pathlib.Path, str]]
        Each photo of the batch that could not be read, with the reason (and, on a Dask
        cluster, the worker that tried).
    """

    paths: list[Path]
    descriptors: np.ndarray
    failures: list[tuple[Path, str]]


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _batches(paths: list[Path], batch_size: int) -> list[list[Path]]:
    return [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]


def _describe(describer: PhotoDescriber, paths: list[Path]) -> DescribedBatch:
    """One batch (the network's passes: `describe_paths`'s default batch size)."""
    descriptors, described, failures = describer.describe_paths(paths, progress=False)
    return DescribedBatch(described, descriptors, failures)


def describe_batches(
    paths: list[Path],
    weights: str | os.PathLike | Mapping[str, np.ndarray],
    *,
    workers: int | None = None,
    dask: str | None = None,
    batch_size: int = 8,
    ordered: bool = False,
) -> Iterator[DescribedBatch]:
    """Describe ``paths`` in batches, on ``workers`` local processes or a Dask cluster.

    Parameters
    ----------
    paths : list[pathlib.Path]
    weights : path-like or Mapping[str, numpy.ndarray]
        The ResNet-18 weights file (``capstone.photos.weights.locate_weights``), or, locally, a
        state dict. On a Dask cluster a file, readable at this path on every worker.
    workers : int, optional
        Local processes (default: `default_workers`; 1 describes in this process). Ignored
        with ``dask``.
    dask : str, optional
        A Dask scheduler's address, ``tcp://HOST:8786``.
    batch_size : int, optional (default=8)
        Photos per batch (one network pass, one task).
    ordered : bool, optional (default=False)
        Yield the batches in the order of ``paths``, not as they are done.

    Yields
    ------
    DescribedBatch
        Every path of ``paths`` is in exactly one batch's ``paths`` or ``failures``.

    Raises
    ------
    DaskUnavailable
        If the scheduler ``dask`` does not answer within `DASK_TIMEOUT` seconds, naming
        ``--dask`` and the address.
    capstone.photos.weight_files.WeightsError, ValueError
        If the weights cannot be loaded.
    """
    batch_size = count("batch_size", batch_size)
    batches = _batches([Path(p) for p in paths], batch_size)
    if dask is not None:
        if isinstance(weights, Mapping):
            raise TypeError("a Dask cluster loads the weights from a file: pass its path")
        return _on_dask(batches, Path(weights).absolute(), dask, ordered)
    workers = default_workers() if workers is None else count("workers", workers)
    workers = min(workers, len(batches))
    if workers <= 1:
        return _here(batches, weights)
    return _on_processes(batches, weights, workers, ordered)


def _here(batches: list[list[Path]], weights) -> Iterator[DescribedBatch]:
    describer = PhotoDescriber(weights) if batches else None
    for batch in batches:
        yield _describe(describer, batch)


# -- local processes ----------------------------------------------------------------------------

_LOCAL: list[PhotoDescriber] = []  # a local worker's network, loaded once by `_start_local`


def _start_local(weights) -> None:
    """A local worker's start: one BLAS thread (for the process's life), the network loaded."""
    threadpool_limits(1)
    _LOCAL.append(PhotoDescriber(weights))


def _describe_local(paths: list[Path]) -> DescribedBatch:
    return _describe(_LOCAL[0], paths)


def _in_flight(
    submit: Callable[[list[Path]], cf.Future], batches: list[list[Path]], window: int, ordered: bool
) -> Iterator[DescribedBatch]:
    """Keep ``window`` batches submitted; yield their results as done, or in order."""
    pending = iter(batches)
    running: dict[cf.Future, int] = {}
    done: dict[int, DescribedBatch] = {}
    next_out = 0
    for index, batch in zip(range(window), pending, strict=False):
        running[submit(batch)] = index
    submitted = len(running)
    while running:
        finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
        for future in finished:
            done[running.pop(future)] = future.result()
            batch = next(pending, None)
            if batch is not None:
                running[submit(batch)] = submitted
                submitted += 1
        if not ordered:
            yield from done.values()
            done.clear()
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1


def _on_processes(batches, weights, workers: int, ordered: bool) -> Iterator[DescribedBatch]:
    context = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_local, initargs=(weights,)
    )
    try:
        yield from _in_flight(partial(pool.submit, _describe_local), batches, _AHEAD * workers,
                              ordered)  # fmt: skip
    finally:  # also when the caller stops early: the batches not started are dropped
        pool.shutdown(cancel_futures=True)


# -- a Dask cluster -----------------------------------------------------------------------------

_ON_WORKER: dict[str, PhotoDescriber] = {}  # a Dask worker's networks, by their weights' sha256


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _describe_on_worker(paths: list[Path], weights: Path, sha256: str) -> DescribedBatch:
    """A Dask task: one batch, on the worker's cached network, with one BLAS thread."""
    from distributed import get_worker

    worker = get_worker().address
    if sha256 not in _ON_WORKER:
        try:
            found = _sha256(weights)
        except OSError as e:
            raise OSError(
                f"worker {worker} cannot read the weights {weights} ({e.strerror or e}): put "
                "them in a folder every worker sees at the same path (--weights)"
            ) from None
        if found != sha256:
            raise ValueError(
                f"worker {worker}: the weights {weights} are not the client's (sha256 "
                f"{found[:12]}..., expected {sha256[:12]}...)"
            )
        _ON_WORKER[sha256] = PhotoDescriber(weights)
    with threadpool_limits(1):
        batch = _describe(_ON_WORKER[sha256], paths)
    failures = [(path, f"{reason} (on worker {worker})") for path, reason in batch.failures]
    return DescribedBatch(batch.paths, batch.descriptors, failures)


def _client(address: str):
    """A ``distributed.Client`` of the scheduler at ``address``, or `DaskUnavailable`."""
    try:
        from distributed import Client
    except ImportError:
        raise DaskUnavailable(
            f"--dask {address}: Dask is not installed (pip install 'capstone[cluster]')"
        ) from None
    try:
        return Client(address, timeout=DASK_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise DaskUnavailable(
            f"--dask {address}: no Dask scheduler answered within {DASK_TIMEOUT} s ({e}); "
            "start one with `dask scheduler` and workers with `dask worker tcp://HOST:8786`"
        ) from None


def _on_dask(batches, weights: Path, address: str, ordered: bool) -> Iterator[DescribedBatch]:
    sha256 = _sha256(weights)
    client = _client(address)
    try:
        # the cluster as a concurrent.futures executor: the same loop as local processes
        executor = client.get_executor(pure=False)
        window = _AHEAD * max(1, sum(client.nthreads().values()))

        # a worker has a working folder of its own: it gets absolute paths, the caller its own
        given = {path.absolute(): path for batch in batches for path in batch}

        def submit(batch: list[Path]) -> cf.Future:
            absolute = [path.absolute() for path in batch]
            return executor.submit(_describe_on_worker, absolute, weights, sha256)

        for batch in _in_flight(submit, batches, window, ordered):
            failures = [(given[path], reason) for path, reason in batch.failures]
            yield DescribedBatch([given[p] for p in batch.paths], batch.descriptors, failures)
    finally:
        client.close()
