"""Atomic, pickle-free storage: named arrays plus JSON metadata in one ``.npz`` file.

Every artifact `capstone` saves (model weights, training checkpoints, image databases) is a
zip archive that ``numpy.load`` can open: one ``.npy`` member per array and a ``metadata.json``
member (read it with ``unzip -p FILE metadata.json``). ``metadata["kind"]`` says what the file
is, so loading a database where a model is expected is a clear error, not a confusing one.

Writes go to a temporary file in the destination folder, are flushed to disk, then renamed over
the destination: an interrupted save leaves the previous file intact, never half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ArchiveError", "atomic_write", "load_archive", "save_archive"]

FORMAT_VERSION = 1
_METADATA = "metadata.json"


class ArchiveError(ValueError):
    """A file is missing parts, corrupt, or of another kind than expected."""


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write, *, overwrite: bool = False) -> Path:
    """Call ``write(file_object)`` on a temporary file, then move it onto ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination. Its folder is created if needed.
    write : Callable[[BinaryIO], None]
        Writes the whole content to the open binary file it is given.
    overwrite : bool, optional (default=False)
        Whether an existing ``path`` may be replaced. Without it an existing file is an error,
        so nothing a user saved is silently replaced.

    Returns
    -------
    pathlib.Path
        The destination path.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode any new file would get, so a
        # shared course data folder stays readable to the class
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno is not None and e.filename is None:
            # a failed write (a full disk) names no file: name the one being written
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_archive(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any],
    *,
    kind: str,
    overwrite: bool = False,
) -> Path:
    """Save ``arrays`` and JSON ``metadata`` to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination ``.npz`` file.
    arrays : Mapping[str, numpy.ndarray]
        Named numeric arrays (object arrays are refused: they would need pickle).
    metadata : Mapping[str, Any]
        JSON-serializable facts about the arrays; ``kind`` and ``format_version`` are added.
    kind : str
        What the file holds, e.g. ``"capstone.image.model"``; checked again by `load_archive`.
    overwrite : bool, optional (default=False)
        Whether an existing file may be replaced.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> _ = save_archive(p, {"w": np.eye(2)}, {"note": "hi"}, kind="demo")
    >>> arrays, meta = load_archive(p, kind="demo")
    >>> arrays["w"].tolist(), meta["note"]
    ([[1.0, 0.0], [0.0, 1.0]], 'hi')
    """
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    for name, a in arrays.items():
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object: it cannot be saved without pickle")
    meta = {**metadata, "kind": kind, "format_version": FORMAT_VERSION}
    meta_bytes = json.dumps(meta, indent=2, sort_keys=True).encode()

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(_METADATA, meta_bytes)
            for name, a in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, a, allow_pickle=False)

    return atomic_write(path, write, overwrite=overwrite)


def load_archive(
    path: str | os.PathLike, *, kind: str, required: tuple[str, ...] = ()
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load the arrays and metadata that `save_archive` wrote.

    Parameters
    ----------
    path : path-like
        The ``.npz`` file.
    kind : str
        The kind the caller expects; another kind is an `ArchiveError`.
    required : tuple[str, ...]
        Array names that must be present.

    Returns
    -------
    arrays : dict[str, numpy.ndarray]
    metadata : dict[str, Any]

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ArchiveError
        If the file is truncated or corrupt, not a `capstone` archive, of another kind, or
        lacks a required array.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if _METADATA not in names:
                raise ArchiveError(f"{path}: not a capstone file (it has no {_METADATA})")
            meta = json.loads(zf.read(_METADATA))
            arrays = {}
            for name in sorted(n for n in names if n.endswith(".npy")):
                with zf.open(name) as member:
                    arrays[name[: -len(".npy")]] = np.lib.format.read_array(
                        member, allow_pickle=False
                    )
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as e:
        raise ArchiveError(f"{path}: corrupt or truncated file ({e})") from e
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        found = meta.get("kind") if isinstance(meta, dict) else None
        raise ArchiveError(f"{path}: holds {found!r}, expected {kind!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArchiveError(
            f"{path}: format_version {meta.get('format_version')!r} is not supported "
            f"(this capstone reads version {FORMAT_VERSION})"
        )
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ArchiveError(f"{path}: missing array(s) {', '.join(missing)}")
    return arrays, meta
