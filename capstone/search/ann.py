"""An approximate nearest-neighbour index (faiss) over unit embeddings, re-ranked exactly.

An exact query reads the whole (n, d) float32 matrix E: at 82,612 x 200 that is 66 MB and
about 1.7 ms, the machine's memory bandwidth; at 1,000,000 images 800 MB and 68 ms. Above
`THRESHOLD` rows an index reads a fraction of it instead:

1. faiss (`faiss-cpu`, inner-product metric) proposes ``candidates`` rows for each query q
   (`Settings`: an index-factory string such as ``"PQ100x4fs"`` or ``"IVF4096,PQ100x4fs"``
   and its search parameter, e.g. ``nprobe``, chosen by `choose` from measured figures:
   docs/benchmarks.md, `benchmarks/ann.py`);
2. the candidates are re-ranked with the float32 rows, ``s_j = E_j . q``, and the top k kept,
   so every score shown is exact; only a true neighbour that faiss did not propose can be
   missed (recall@10 against the exact scan is measured, >= 0.999 at COCO scale).

`AnnIndex.for_matrix` is the one call a store of embeddings makes: it loads the index saved
beside the store's file when that index was built from exactly these rows (its `fingerprint`,
a sha256 of the matrix), and otherwise builds it (a message and a progress bar on stderr) and
saves it there atomically: ``<file>.ann.faiss`` and ``<file>.ann.json``.

The index file is input like any other, and faiss reads it with C++ code that trusts it: a
corrupt or hostile file could crash the process rather than raise. So the JSON sidecar
(written by capstone, after the index) keeps the sha256 of the index file, and only bytes
whose hash matches are handed to faiss; anything else is rebuilt, with a warning naming the
file. (The sidecar guards against corruption, truncation and a stray file; whoever can rewrite
both files can also rewrite the database beside them, which is read pickle-free.)

Threads: faiss runs OpenMP, by default on every core (``omp_get_max_threads``), which speeds
up building and batches. One query is answered on one thread (`search`), as its latency is
measured: its work is about a millisecond, and on a shared machine a second thread waits for
a core held by someone else.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from capstone.common.archive import ArchiveError, atomic_write
from capstone.common.checks import count
from capstone.common.progress import Progress
from capstone.common.vectors import scores_of_rows, top_k

__all__ = [
    "ANN_KIND",
    "FLAT_ROWS",
    "THRESHOLD",
    "AnnIndex",
    "Settings",
    "choose",
    "fingerprint",
    "index_files",
]

ANN_KIND = "capstone.search.ann"
FORMAT_VERSION = 1

#: Rows below which the exact scan answers (it is exact, and under ~0.6 ms there).
THRESHOLD = 30_000
#: Rows up to which every code is scored (`choose`: ~0.4 ms at 82,612, growing with the rows);
#: above, an IVF quantizer picks the cells to score first.
FLAT_ROWS = 200_000

_PQ_CENTROIDS = 16  # centroids of a 4-bit code: its training needs at least as many rows
_RERANK_ROWS = 16_384  # candidate rows gathered at a time for the exact re-rank (13 MB at d=200)

_ADD_CHUNK = 20_000  # rows added to faiss at a time: a progress step, and a bounded copy
_TRAIN_ROWS = 64  # k-means training rows per IVF list (faiss warns below 39)


@dataclass(frozen=True)
class Settings:
    """How an index is built and searched.

    Attributes
    ----------
    factory : str
        A faiss ``index_factory`` string, e.g. ``"PQ100x4fs"`` or ``"IVF4096,PQ100x4fs"``.
    search : str
        Its search parameters for ``faiss.ParameterSpace``, e.g. ``"nprobe=128"``; empty for
        an index without any (the flat codes score every row).
    candidates : int
        Rows faiss proposes per query, re-ranked exactly (at least k).
    batches : bool
        Whether a batch of queries goes through the index too. An exact batch is one matrix
        product that reads the rows once for all its queries, so its cost per query falls
        with the batch; the index's does not. Measured with 100 queries: at 82,612 rows the
        two took about the same time (46-62 ms), so the exact batch answers there; at 991,344
        the index was ~7x faster (52-59 against 383-414 ms).
    """

    factory: str
    search: str
    candidates: int
    batches: bool = True


def choose(n: int, d: int, threshold: int = THRESHOLD) -> Settings | None:
    """The index for ``n`` rows of ``d`` dimensions, or None below ``threshold`` (the exact
    scan answers; also below the 16 rows a 4-bit code's training needs).

    Product quantization with 4-bit codes read by SIMD "fast scan" (faiss ``PQ{m}x4fs``,
    ``m = d / 2``): each pair of coordinates is coded as the nearest of 16 centroids learnt for
    that pair, so a row takes d / 4 bytes (50 at d = 200, 1/16 of its float32 row), and a
    query's approximate score of every code comes from 16-entry lookup tables held in SIMD
    registers. Up to `FLAT_ROWS` rows every code is scored (no coarse cells to miss: text
    queries come from another distribution than the images, and a cell-based index had to
    probe 30% of its cells for the exact top 10), and the best ``candidates`` are re-ranked
    with the float32 rows. Above, an IVF coarse quantizer first picks the ``nprobe`` cells
    nearest the query. Chosen and tuned on trained embeddings with held-out caption queries
    (`benchmarks/ann.py`, docs/benchmarks.md).
    """
    if n < max(threshold, _PQ_CENTROIDS):
        return None
    codes = f"PQ{d // 2 if d % 2 == 0 else d}x4fs"
    if n <= FLAT_ROWS:
        return Settings(codes, "", 1000, batches=False)
    lists = min(4096, n // _TRAIN_ROWS)
    return Settings(f"IVF{lists},{codes}", "nprobe=128", 1000)  # batches: the default


def fingerprint(matrix: np.ndarray) -> str:
    """sha256 of a matrix's shape and float32 values: what an index was built from."""
    digest = hashlib.sha256(repr(matrix.shape).encode())
    for start in range(0, len(matrix), 100_000):  # a chunk at a time: no copy of a large matrix
        digest.update(np.ascontiguousarray(matrix[start : start + 100_000], dtype=np.float32).data)
    return digest.hexdigest()


def index_files(beside: str | os.PathLike) -> tuple[Path, Path]:
    """The index file and its JSON sidecar saved beside ``beside`` (``X.npz`` ->
    ``X.npz.ann.faiss``, ``X.npz.ann.json``)."""
    beside = Path(beside)
    return beside.with_name(beside.name + ".ann.faiss"), beside.with_name(beside.name + ".ann.json")


def _sidecar(sidecar: Path) -> tuple[dict, Settings]:
    """The metadata of an index's JSON sidecar and its `Settings`; `ArchiveError` (naming it)
    for one capstone did not write."""
    try:
        meta = json.loads(sidecar.read_text())
        settings = Settings(**meta["settings"])
        if meta["kind"] != ANN_KIND or meta["format_version"] != FORMAT_VERSION:
            raise ValueError(f"kind {meta['kind']!r}, version {meta['format_version']!r}")
        if not isinstance(meta["index_sha256"], str) or not isinstance(meta["fingerprint"], str):
            raise ValueError("no index_sha256 or fingerprint")
    except FileNotFoundError as e:
        raise ArchiveError(f"{sidecar} is missing: the index beside it cannot be checked") from e
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise ArchiveError(f"{sidecar}: not a search-index sidecar capstone wrote ({e})") from e
    return meta, settings


class AnnIndex:
    """A faiss index over the rows of ``matrix``, its candidates re-ranked with ``matrix``.

    Build one with `build`, or `for_matrix` (load the saved one, else build and save).

    Attributes
    ----------
    matrix : numpy.ndarray, shape (n, d), float32
        Unit rows (kept by reference: the re-rank reads them).
    settings : Settings
    fingerprint : str
        `fingerprint` of ``matrix``.
    build_seconds : float
    """

    def __init__(self, index, matrix: np.ndarray, settings: Settings, fingerprint: str,
                 build_seconds: float):  # fmt: skip
        self.index = index
        self.matrix = matrix
        self.settings = settings
        self.fingerprint = fingerprint
        self.build_seconds = build_seconds
        faiss.ParameterSpace().set_index_parameters(index, settings.search)

    def __len__(self) -> int:
        return self.index.ntotal

    def describe(self) -> str:
        """``"PQ100x4fs (1000 candidates re-ranked exactly)"``, with the search parameter first
        when there is one: ``"IVF4096,PQ100x4fs (nprobe=128, 1000 candidates ...)"``."""
        s = self.settings
        search = f"{s.search}, " if s.search else ""
        return f"{s.factory} ({search}{s.candidates} candidates re-ranked exactly)"

    @classmethod
    def build(cls, matrix: np.ndarray, settings: Settings, *, fingerprint_: str | None = None,
              progress: bool = True) -> AnnIndex:  # fmt: skip
        """Build the index of ``settings`` over (n, d) unit rows, with a progress bar.

        The lists of an IVF index and the codes' centroids train on a random sample of rows
        (`_TRAIN_ROWS` a list); rows are added in chunks, so the only copy of the matrix is
        one chunk.
        """
        n, d = matrix.shape
        start = time.perf_counter()
        index = faiss.index_factory(d, settings.factory, faiss.METRIC_INNER_PRODUCT)
        bar = Progress(enabled=progress)
        if progress:  # said on every stream, a log too: this takes a while, once
            print(f"building the search index {settings.factory} over {n:,} rows (once)",
                  file=sys.stderr, flush=True)  # fmt: skip
        if not index.is_trained:
            try:  # an IVF index: _TRAIN_ROWS rows a list
                wanted = _TRAIN_ROWS * faiss.extract_index_ivf(index).nlist
            except RuntimeError:  # codes alone: faiss's k-means reads at most 256 rows a centroid
                wanted = 256 * _PQ_CENTROIDS
            sample = np.random.default_rng(0).choice(n, min(n, wanted), replace=False)
            bar.start(f"training {settings.factory} on {len(sample):,} rows", 1)
            index.train(matrix[np.sort(sample)])  # faiss makes rows contiguous float32
        bar.start(f"adding {n:,} rows", n)
        for lo in range(0, n, _ADD_CHUNK):
            index.add(matrix[lo : lo + _ADD_CHUNK])  # (itself, copying only what is not)
            bar.update(min(lo + _ADD_CHUNK, n))
        seconds = time.perf_counter() - start
        bar.finish(
            f"built the search index ({settings.factory}) over {n:,} rows in {seconds:.1f} s"
        )
        fp = fingerprint(matrix) if fingerprint_ is None else fingerprint_
        return cls(index, matrix, settings, fp, seconds)

    # -- queries -----------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, *, exclude_rows=()
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top ``k`` among the candidates of each unit query, best first.

        Parameters
        ----------
        queries : numpy.ndarray, shape (Q, d)
            Unit rows.
        k : int
        exclude_rows : sequence of int
            Rows never returned (faiss is asked for that many more candidates).

        Returns
        -------
        scores : numpy.ndarray, shape (Q, k'), float32
            Exact ``E_j . q`` of the rows returned, k' = min(k, n - len(exclude_rows)). A query
            whose probed lists held fewer than k' rows (not seen in the benchmarks) is answered
            by the exact scan of ``matrix``.
        rows : numpy.ndarray, shape (Q, k'), int64
        """
        k = count("k", k)
        exclude = np.asarray(sorted(set(exclude_rows)), dtype=np.int64)
        n_best = min(k, len(self) - len(exclude))
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if n_best <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        wanted = min(max(self.settings.candidates, k) + len(exclude), len(self))
        threads = faiss.omp_get_max_threads()
        if len(q) == 1:
            faiss.omp_set_num_threads(1)  # one query: waking threads costs more than it saves
        try:
            _, rows = self.index.search(q, wanted)
        finally:
            faiss.omp_set_num_threads(threads)
        found = rows >= 0
        if len(exclude):
            found &= ~np.isin(rows, exclude)
        rows = np.where(found, rows, 0)
        # exact scores of the candidates, s_qc = E[rows[q, c]] . q, gathering a bounded number
        # of rows at a time (a batch of 100 queries' 1,000 candidates would be 80 MB at once)
        exact = np.empty(rows.shape, np.float32)
        step = max(1, _RERANK_ROWS // rows.shape[1])
        for lo in range(0, len(q), step):
            gathered = self.matrix[rows[lo : lo + step]]  # (step, c, d)
            exact[lo : lo + step] = (gathered @ q[lo : lo + step, :, None])[..., 0]
        exact[~found] = -np.inf
        short = np.flatnonzero(found.sum(axis=1) < n_best)
        if len(short):
            exact, rows = exact[:, :n_best].copy(), rows[:, :n_best].copy()
            scan = scores_of_rows(self.matrix, q[short])
            scan[:, exclude] = -np.inf
            rows[short] = top_k(scan, n_best)
            exact[short] = np.take_along_axis(scan, rows[short], axis=1)
        best = top_k(exact, n_best)
        return np.take_along_axis(exact, best, axis=1), np.take_along_axis(rows, best, axis=1)

    # -- files -------------------------------------------------------------------------------

    def save(self, beside: str | os.PathLike) -> Path:
        """Write the index beside ``beside`` atomically (`index_files`): the index, then the
        sidecar with its sha256, so a half-written pair never matches."""
        path, sidecar = index_files(beside)
        data = faiss.serialize_index(self.index).tobytes()
        atomic_write(path, lambda f: f.write(data), overwrite=True)
        meta = {
            "kind": ANN_KIND,
            "format_version": FORMAT_VERSION,
            "faiss": faiss.__version__,
            "index_sha256": hashlib.sha256(data).hexdigest(),
            "fingerprint": self.fingerprint,
            "n": len(self),
            "d": self.index.d,
            "settings": asdict(self.settings),
            "build_seconds": self.build_seconds,
        }
        atomic_write(
            sidecar, lambda f: f.write(json.dumps(meta, indent=1).encode()), overwrite=True
        )
        return path

    @classmethod
    def load(cls, beside: str | os.PathLike, matrix: np.ndarray) -> AnnIndex:
        """Read the index saved beside ``beside`` for the rows of ``matrix``.

        Raises
        ------
        FileNotFoundError
            No index there.
        capstone.common.archive.ArchiveError
            A sidecar that is not capstone's, an index file whose sha256 does not match it (not
            handed to faiss), an index faiss cannot read, or one of other rows (the file named).
        """
        path, sidecar = index_files(beside)
        meta, settings = _sidecar(sidecar)
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta["index_sha256"]:
            raise ArchiveError(
                f"{path}: its sha256 does not match {sidecar.name}: corrupt or replaced"
            )
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as e:
            raise ArchiveError(f"{path}: faiss cannot read this index ({e})") from e
        if (index.ntotal, index.d) != matrix.shape:
            raise ArchiveError(
                f"{path}: indexes {index.ntotal} x {index.d} rows, not {matrix.shape}"
            )
        return cls(index, matrix, settings, meta["fingerprint"], meta.get("build_seconds", 0.0))

    @classmethod
    def for_matrix(cls, matrix: np.ndarray, beside: str | os.PathLike | None, *,
                   threshold: int = THRESHOLD, fingerprint_: str | None = None,
                   progress: bool = True) -> AnnIndex | None:  # fmt: skip
        """The index over ``matrix`` (n, d unit rows), kept beside the file ``beside``.

        None below ``threshold`` rows (the exact scan answers). Otherwise the saved index when
        it was built from these rows with today's `choose`; else a new one, built (with a
        message and progress on stderr when ``progress``) and saved. A stale index (other rows,
        another model, other settings) is rebuilt, never used; an unreadable one is rebuilt with
        a warning naming it; a folder that cannot be written keeps the index in memory, with a
        warning. ``beside=None`` builds in memory only.

        ``fingerprint_`` (default: `fingerprint` of ``matrix``) lets a store that already keeps
        a hash of its rows and model skip hashing them again.
        """
        settings = choose(*matrix.shape, threshold)
        if settings is None:
            return None
        fp = fingerprint(matrix) if fingerprint_ is None else fingerprint_
        if beside is not None and index_files(beside)[0].exists():
            try:
                meta, saved = _sidecar(index_files(beside)[1])
                if meta["fingerprint"] == fp and saved == settings:
                    return cls.load(beside, matrix)
                why = "the rows or the model changed"
                if meta["fingerprint"] == fp:
                    why = f"its settings are not today's {settings.factory} ({settings.search})"
                if progress:
                    print(f"the search index {index_files(beside)[0]} is stale ({why}): "
                          "rebuilding it", file=sys.stderr, flush=True)  # fmt: skip
            except (ArchiveError, OSError) as e:
                warnings.warn(f"rebuilding the search index: {e}", stacklevel=2)
        index = cls.build(matrix, settings, fingerprint_=fp, progress=progress)
        if beside is not None:
            try:
                index.save(beside)
            except OSError as e:
                warnings.warn(f"could not save the search index beside {beside}: {e}", stacklevel=2)
        return index
