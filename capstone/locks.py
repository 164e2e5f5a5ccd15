"""One writer per run folder: a lock file that a second `train` into the same folder meets.

The lock is ``<folder>/.lock``, created with ``O_CREAT | O_EXCL`` (atomic on every local file
system) and holding the owner's process id. A lock whose process no longer runs (a training
killed with ``kill -9``, a machine that rebooted) is stale and is taken over.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["FolderLocked", "exclusive"]

LOCK_FILE = ".lock"


class FolderLocked(RuntimeError):
    """Another live process holds the folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by someone else
        return True
    return True


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, what: str = "this folder") -> Iterator[Path]:
    """Hold ``folder`` for this process while the block runs.

    Raises
    ------
    FolderLocked
        If a live process holds it; the message names the folder and the process.
    """
    lock = Path(folder) / LOCK_FILE
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):  # a stale lock is removed once, then taken
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                raise FolderLocked(
                    f"{lock.parent} is in use by {what} of process {pid}: wait for it to "
                    "finish, or use another run name"
                ) from None
            lock.unlink(missing_ok=True)
    else:
        raise FolderLocked(f"{lock.parent}: could not take {lock} (another process races for it)")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        yield lock.parent
    finally:
        lock.unlink(missing_ok=True)
