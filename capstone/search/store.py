"""A collection's database: one SQLite file, one row per photo (rclip's choice).

``<data home>/collections/<name>.db`` holds, per photo, its path relative to the folder, its
size and modification time (ns) when described, its 512-d descriptor, its d-dimensional unit
embedding and the sha256 of the model that made it; a ``meta`` table holds the folder, d, the
run and model, and a ``generation`` counter that every write raises. Writes are transactions
in WAL mode, so an interrupted indexing keeps every batch committed, and a batch costs the
same whether the collection holds a thousand photos or a million.

Vectors are stored as their little-endian float32 bytes and read back bitwise; a blob of
another length is refused. Searching wants one (n, d) float32 matrix: `Collection.search_matrix`
builds it once and caches it beside the database (``<name>.db.matrix-<fingerprint>.npy``, with
the row ids in ``<name>.db.ids-<fingerprint>.npy``), rebuilt when the fingerprint (rows,
generation, model) changes.
"""

from __future__ import annotations

import glob
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capstone.common.archive import atomic_write
from capstone.common.checks import count
from capstone.common.vectors import normalize_rows, scores_of_rows
from capstone.search import ann
from capstone.search.ann import AnnIndex
from capstone.search.database import best_matches

__all__ = ["DESCRIPTOR_SIZE", "Collection", "CollectionError", "SearchMatrix"]

DESCRIPTOR_SIZE = 512  # ResNet-18's pool, as capstone.photos.resnet makes it
SCHEMA_VERSION = 1
APPLICATION_ID = 0x43415043  # "CAPC" in the SQLite header: a foreign database is told apart
_VECTOR = np.dtype("<f4")  # stored bytes: little-endian float32, whatever the machine
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE photos (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    descriptor BLOB NOT NULL,
    embedding BLOB NOT NULL,
    model TEXT NOT NULL
);
"""
_CHUNK_ROWS = 10_000  # rows read (or re-embedded) per step: memory bounded by a chunk


class CollectionError(ValueError):
    """A collection file that is not one this version can read (corrupt, foreign, newer)."""


@dataclass(frozen=True)
class SearchMatrix:
    """What a search scans: the collection's embeddings as one matrix.

    Attributes
    ----------
    ids : numpy.ndarray, shape (n,), int64
        Row ids (`Collection.paths_of` names them), ascending.
    embeddings : numpy.ndarray, shape (n, d), float32
        Unit rows; row i belongs to ``ids[i]``. Read-only (possibly a memory map).
    fingerprint : str
        ``"<n>-<generation>-<model sha256>"``: equal fingerprints, equal matrices.
    """

    ids: np.ndarray
    embeddings: np.ndarray
    fingerprint: str


def _blob(vectors: np.ndarray, width: int, what: str) -> list[bytes]:
    """Each row of the (n, width) ``vectors`` as float32 bytes."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[1] != width or vectors.dtype != np.float32:
        raise ValueError(f"{what} must be (n, {width}) float32, got {vectors.shape} "
                         f"{vectors.dtype}")  # fmt: skip
    data = np.ascontiguousarray(vectors, dtype=_VECTOR)
    return [row.tobytes() for row in data]


class Collection:
    """An open collection database (`open` or `create`; close it, or use ``with``).

    Attributes
    ----------
    path : Path
        The database file.
    folder : Path
        The folder indexed (absolute); photo paths are relative to it.
    d : int
        Embedding width.
    info : dict
        ``run`` and ``model_sha256`` of the model that made every embedding.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection):
        self.path = path
        self._db = connection
        self._matrix: SearchMatrix | None = None  # the last `search_matrix`, while current
        self._ann: tuple[str, AnnIndex | None] | None = None  # (fingerprint, index) of `_index`
        #: photos from which a query goes through the approximate index (as `ImageDatabase`)
        self.index_threshold = ann.THRESHOLD
        try:
            application_id = self._db.execute("PRAGMA application_id").fetchone()[0]
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if application_id != APPLICATION_ID:
                raise CollectionError(f"{path}: a SQLite database, but not a capstone collection")
            if version > SCHEMA_VERSION:
                raise CollectionError(f"{path}: made by a newer capstone (schema {version}); "
                                      "upgrade capstone to read it")  # fmt: skip
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
            self.folder = Path(meta["folder"])
            self.d = int(meta["d"])
            self.info = {"run": meta["run"], "model_sha256": meta["model_sha256"]}
        except (sqlite3.DatabaseError, KeyError, ValueError) as e:
            self._db.close()
            if isinstance(e, CollectionError):
                raise
            raise CollectionError(
                f"{path}: not a collection this version can read ({e}); delete it or choose "
                "another --name"
            ) from None

    @staticmethod
    def _connect(path: Path, mode: str) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (`_write`), one per batch
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode={mode}", uri=True,
                             isolation_level=None)  # fmt: skip
        try:
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses no committed batch
        except sqlite3.DatabaseError as e:
            db.close()
            raise CollectionError(
                f"{path}: not a collection this version can read ({e}); delete it or choose "
                "another --name"
            ) from None
        return db

    @classmethod
    def open(cls, path: str | os.PathLike) -> Collection:
        """Open the collection database ``path``.

        Raises
        ------
        FileNotFoundError
            If there is no such file.
        CollectionError
            If the file is corrupt, not a capstone collection, or from a newer version.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such collection")
        return cls(path, cls._connect(path, "rw"))

    @classmethod
    def create(cls, path: str | os.PathLike, folder: Path, d: int, info: dict,
               fill: Callable[[Collection], None] | None = None) -> Collection:  # fmt: skip
        """A new collection database at ``path`` (which must not exist) for ``folder``,
        embeddings of width ``d`` by the model of ``info`` (``run``, ``model_sha256``).

        It is made under a temporary name, filled by ``fill(collection)`` if given (a
        migration), closed and renamed onto ``path``: an interrupted creation leaves no file
        at ``path``.
        """
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
        for leftover in path.parent.glob(f"{temporary.name}*"):
            leftover.unlink()  # of an earlier attempt of this pid, killed
        db = cls._connect(temporary, "rwc")
        try:
            db.execute("BEGIN")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            meta = {"folder": str(folder), "d": str(count("d", d)), "generation": "0",
                    "run": str(info.get("run")), "model_sha256": str(info.get("model_sha256"))}
            db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            db.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")  # constants, no user value
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
            db.execute("COMMIT")
            if fill is not None:
                fill(cls(temporary, db))
        finally:
            db.close()  # the last connection: the write-ahead log is folded in and removed
        os.replace(temporary, path)
        return cls.open(path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM photos").fetchone()[0]

    @property
    def generation(self) -> int:
        """Raised by every write: with the row count and model, what the matrix cache is for."""
        (value,) = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(value)

    def _write(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """Run ``work`` in one transaction that also raises the generation: all of it or none.

        Raises
        ------
        OSError
            Naming the file, when SQLite cannot write it (disk full, read-only, locked by a
            program other than capstone); the batch is not committed, earlier ones stay.
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                work(self._db)
                self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                                 "WHERE key = 'generation'")  # fmt: skip
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already (disk full)
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as e:
            raise OSError(f"could not write {self.path}: {e}") from None

    def stats(self) -> dict[str, tuple[int, int]]:
        """Each photo's relative path -> (size, mtime in ns) when it was described."""
        return {p: (s, m) for p, s, m in self._db.execute("SELECT path, size, mtime FROM photos")}

    def add(self, paths: list[str], sizes, mtimes, descriptors: np.ndarray,
            embeddings: np.ndarray) -> None:  # fmt: skip
        """Commit one batch of photos (replacing rows of the same paths), in one transaction.

        Parameters
        ----------
        paths : list[str], length n
            Relative to `folder`.
        sizes, mtimes : Sequence[int], length n
        descriptors : numpy.ndarray, shape (n, 512), float32
        embeddings : numpy.ndarray, shape (n, d), float32
            By the model of `info`.
        """
        descriptor_blobs = _blob(descriptors, DESCRIPTOR_SIZE, "descriptors")
        embedding_blobs = _blob(embeddings, self.d, "embeddings")
        rows = list(zip(paths, map(int, sizes), map(int, mtimes), descriptor_blobs,
                        embedding_blobs, strict=True))  # fmt: skip
        model = self.info["model_sha256"]
        self._write(lambda db: db.executemany(
            "INSERT OR REPLACE INTO photos (path, size, mtime, descriptor, embedding, model) "
            "VALUES (?, ?, ?, ?, ?, ?)", [(*row, model) for row in rows]))  # fmt: skip

    def remove(self, paths: Iterable[str]) -> None:
        """Delete the rows of ``paths`` (relative), in one transaction."""
        rows = [(p,) for p in paths]
        if rows:
            self._write(lambda db: db.executemany("DELETE FROM photos WHERE path = ?", rows))

    def reembed(self, embed: Callable[[np.ndarray], np.ndarray], info: dict) -> None:
        """Recompute every embedding from its descriptor with ``embed`` ((n, 512) -> (n, d)),
        the model of ``info``: one transaction, so no reader sees two models mixed."""

        def work(db: sqlite3.Connection) -> None:
            last = -1
            while True:
                chunk = db.execute("SELECT id, descriptor FROM photos WHERE id > ? ORDER BY id "
                                   "LIMIT ?", (last, _CHUNK_ROWS)).fetchall()  # fmt: skip
                if not chunk:
                    break
                ids = [i for i, _ in chunk]
                descriptors = self._vectors([b for _, b in chunk], DESCRIPTOR_SIZE, "descriptor")
                blobs = _blob(embed(descriptors), self.d, "embeddings")
                model = str(info.get("model_sha256"))
                rows = [(b, model, i) for b, i in zip(blobs, ids, strict=True)]
                db.executemany("UPDATE photos SET embedding = ?, model = ? WHERE id = ?", rows)
                last = ids[-1]
            db.executemany("UPDATE meta SET value = ? WHERE key = ?",
                           [(str(info.get("run")), "run"),
                            (str(info.get("model_sha256")), "model_sha256")])  # fmt: skip

        self._write(work)
        self.info = {"run": str(info.get("run")), "model_sha256": str(info.get("model_sha256"))}

    def _vectors(self, blobs: list[bytes], width: int, column: str) -> np.ndarray:
        """The (len(blobs), width) float32 matrix of stored rows; a blob of another length is
        a clear error naming the file."""
        if any(len(b) != width * _VECTOR.itemsize for b in blobs):
            raise CollectionError(f"{self.path}: a {column} is not {width} float32 values; the "
                                  "file is damaged: delete it and index again")  # fmt: skip
        flat = np.frombuffer(b"".join(blobs), dtype=_VECTOR)
        return flat.astype(np.float32, copy=False).reshape(len(blobs), width)

    def _column(self, column: str, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids (n,), the (n, width) matrix of ``column``), in id order, read in chunks into
        the matrix (memory: the matrix and one chunk), from one snapshot of the rows."""
        self._db.execute("BEGIN")  # one read snapshot: the count and the rows agree
        try:
            (n,) = self._db.execute("SELECT count(*) FROM photos").fetchone()
            ids, matrix = np.empty(n, np.int64), np.empty((n, width), np.float32)
            # ``column`` is one of this module's names, never a user's value
            rows = self._db.execute(f"SELECT id, {column} FROM photos ORDER BY id")
            at = 0
            while chunk := rows.fetchmany(_CHUNK_ROWS):
                ids[at : at + len(chunk)] = [i for i, _ in chunk]
                matrix[at : at + len(chunk)] = self._vectors([b for _, b in chunk], width, column)
                at += len(chunk)
        finally:
            self._db.execute("COMMIT")
        return ids, matrix

    def descriptors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids (n,) int64, descriptors (n, 512) float32), in id order."""
        return self._column("descriptor", DESCRIPTOR_SIZE)

    def fingerprint(self) -> str:
        """``"<rows>-<generation>-<model sha256>"``: what `search_matrix` is cached under."""
        return f"{len(self)}-{self.generation}-{self.info['model_sha256']}"

    def _cache_files(self, fingerprint: str) -> tuple[Path, Path]:
        return (self.path.with_name(f"{self.path.name}.ids-{fingerprint}.npy"),
                self.path.with_name(f"{self.path.name}.matrix-{fingerprint}.npy"))  # fmt: skip

    def search_matrix(self) -> SearchMatrix:
        """The embeddings as one (n, d) float32 matrix with their row ids and fingerprint.

        Kept by this object while its fingerprint is current; else read from the cache beside
        the database when that is current (a memory map: opening costs next to nothing), else
        built from the rows and cached, older caches removed. A cache that cannot be written
        (a read-only folder) only costs the next open a rebuild.
        """
        fingerprint = self.fingerprint()
        if self._matrix is None or self._matrix.fingerprint != fingerprint:
            self._matrix = self._load_matrix(fingerprint)
        return self._matrix

    def _load_matrix(self, fingerprint: str) -> SearchMatrix:
        """`search_matrix` from the cache file or, failing that, from the rows."""
        ids_file, matrix_file = self._cache_files(fingerprint)
        try:
            ids = np.load(ids_file)
            embeddings = np.load(matrix_file, mmap_mode="r")
            if (ids.dtype == np.int64 and ids.ndim == 1 and embeddings.dtype == np.float32
                    and embeddings.shape == (len(ids), self.d)):  # fmt: skip
                return SearchMatrix(ids, embeddings, fingerprint)
        except (OSError, ValueError):
            pass  # absent or unreadable: rebuilt below
        ids, embeddings = self._column("embedding", self.d)
        # this collection's caches only, whatever characters its name holds ("c[1]" is no
        # character class matching c1's)
        for old in self.path.parent.glob(f"{glob.escape(self.path.name)}.*-*.npy"):
            old.unlink(missing_ok=True)
        # ids first: a matrix file never stands without its ids. Both names were just removed:
        # one written meanwhile by another process holds the same rows (FileExistsError, below)
        try:
            atomic_write(ids_file, lambda f: np.save(f, ids))
            atomic_write(matrix_file, lambda f: np.save(f, embeddings))
        except OSError:
            pass  # the answer is the same; the next open builds it again
        embeddings.flags.writeable = False
        return SearchMatrix(ids, embeddings, fingerprint)

    def paths_of(self, ids: Iterable[int]) -> list[str]:
        """The relative paths of the rows ``ids``, in that order."""
        ids = [int(i) for i in ids]
        marks = ", ".join("?" * len(ids))  # placeholders only: the ids go as parameters
        found = dict(self._db.execute(f"SELECT id, path FROM photos WHERE id IN ({marks})", ids))
        return [found[i] for i in ids]

    def query(self, q: np.ndarray, k: int = 10, *, embed=None, exact: bool = False,
              progress: bool = True) -> list[tuple[Path, float]]:  # fmt: skip
        """The ``k`` photos whose embeddings have the highest cosine with the (d,) ``q``.

        As an `ImageDatabase` query answers: from `capstone.search.ann.THRESHOLD` photos up
        through the approximate index kept beside the database (its candidates re-ranked with
        the float32 rows: scores stay exact; built with a message when ``progress``), else, or
        when ``exact``, the top k of `capstone.search.database.best_matches` over ``E q`` for
        the collection's (n, d) embeddings E. ``embed``: another model's map (n, 512) -> (n, d),
        applied to the descriptors instead of the stored embeddings (a search with a run other
        than the one that indexed; always the exact scan).
        """
        k = count("k", k)
        q = normalize_rows(np.asarray(q, dtype=np.float32))
        if embed is None:
            matrix = self.search_matrix()
            ids, embeddings = matrix.ids, matrix.embeddings
            index = None if exact else self._index(matrix, progress)
        else:
            ids, descriptors = self.descriptors()
            embeddings, index = embed(descriptors), None
        if index is None:
            (matches,) = best_matches(scores_of_rows(embeddings, q[None]), ids, k)
            found = [(m.image_id, m.score) for m in matches]
        else:
            scores, rows = index.search(q[None], k)
            found = [(int(i), float(s)) for i, s in zip(ids[rows[0]], scores[0], strict=True)]
        paths = self.paths_of(i for i, _ in found)
        return [(self.folder / p, s) for p, (_, s) in zip(paths, found, strict=True)]

    def _index(self, matrix: SearchMatrix, progress: bool) -> AnnIndex | None:
        """The approximate index over ``matrix`` (None below the threshold), kept by this
        object while its fingerprint is current."""
        if self._ann is None or self._ann[0] != matrix.fingerprint:
            index = AnnIndex.for_matrix(np.ascontiguousarray(matrix.embeddings), self.path,
                                        threshold=self.index_threshold,
                                        fingerprint_=matrix.fingerprint,
                                        progress=progress)  # fmt: skip
            self._ann = (matrix.fingerprint, index)
        return self._ann[1]
