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

    The lock appears whole or not at all: the process id is written to a file of its own,
    which is then hard-linked to ``.lock`` (atomic, and refused if ``.lock`` exists), so no
    other process can see an empty lock and take it for a stale one.

    Raises
    ------
    FolderLocked
        If a live process holds it; the message names the folder and the process.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_FILE
    mine = folder / f"{LOCK_FILE}.{os.getpid()}"
    mine.write_text(str(os.getpid()))
    try:
        for _ in range(2):  # a stale lock is removed once, then taken
            try:
                os.link(mine, lock)
                break
            except FileExistsError:
                try:
                    pid = int(lock.read_text().strip())
                except (OSError, ValueError):
                    pid = 0  # unreadable: no process can be waiting to finish writing it
                if pid and _alive(pid):
                    raise FolderLocked(
                        f"{folder} is in use by {what} of process {pid}: wait for it to "
                        f"finish, or use another run name (if no such process is yours, "
                        f"delete {lock})"
                    ) from None
                lock.unlink(missing_ok=True)
        else:
            raise FolderLocked(f"{folder}: could not take {lock} (another process races for it)")
    finally:
        mine.unlink(missing_ok=True)
    try:
        yield folder
    finally:
        try:
            if lock.read_text().strip() == str(os.getpid()):  # never remove another's lock
                lock.unlink()
        except OSError:
            pass
