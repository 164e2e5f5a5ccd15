"""One writer at a time: an operating-system file lock on a run folder or a collection.

`exclusive` holds a lock file with `filelock.FileLock` (``flock`` on Unix, ``LockFileEx`` on
Windows). The operating system releases it when its holder ends, however it ends (Ctrl-C,
``kill -9``, a crash, a power cut), so no lock is ever stale and no process is ever probed:
testing a pid with ``os.kill(pid, 0)``, as earlier versions did, terminates that process on
Windows.

- A second holder, in another process or through another `exclusive` in this one, is refused
  at once (`FolderLocked`), never made to wait.
- The lock file may remain after release: it is only locked, never read, so a leftover one
  (or the pid-holding ``.lock`` of an earlier version) blocks nobody.
- Beside it, ``<lock>.holder`` records the holder's process, host and start time, for the
  message a refused process prints only; nothing decides by it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import filelock

from capstone.common.archive import atomic_write

__all__ = ["LOCK_FILE", "FolderLocked", "exclusive", "holding"]

LOCK_FILE = ".lock"  # in a run folder; the name earlier versions used, whose files now block nobody


class FolderLocked(RuntimeError):
    """Another holder has the run folder or collection."""


def _holder_file(lock: Path) -> Path:
    return lock.with_name(lock.name + ".holder")


def _holder(lock: Path) -> str:
    """Who holds ``lock``, as its holder recorded it, e.g. " (process 12, host h, since ...)"."""
    try:
        held = json.loads(_holder_file(lock).read_text())
        return f" (process {held['pid']} on {held['host']}, since {held['since']})"
    except (OSError, ValueError, TypeError, KeyError):
        return ""  # not written yet, or unreadable: the message says less, nothing else changes


@contextlib.contextmanager
def holding(lock: str | os.PathLike, subject: str, what: str, advice: str) -> Iterator[Path]:
    """Hold the lock file ``lock`` while the block runs, or fail at once.

    Parameters
    ----------
    lock : path-like
        The lock file (created with its folder if absent; it may remain after release).
    subject : str
        What is held, as the message names it: "run folder /x/runs/r", "collection c (...)".
    what : str
        What holds it: "a training", "an indexing".
    advice : str
        What a refused user can do instead.

    Raises
    ------
    FolderLocked
        ``"<subject> is in use by <what> (process P on H, since T): <advice>"``.
    """
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    # fallback_to_soft=False: on a file system without flock, a pid-file lock would be back;
    # filelock raises an OSError (naming the file) there instead.
    file_lock = filelock.FileLock(lock, timeout=0, fallback_to_soft=False)
    try:
        file_lock.acquire()
    except filelock.Timeout:
        raise FolderLocked(f"{subject} is in use by {what}{_holder(lock)}: {advice}") from None
    holder = _holder_file(lock)
    try:
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        try:
            atomic_write(holder, lambda f: f.write(json.dumps(record).encode()), overwrite=True)
        except OSError:
            pass  # only the message of a refused process would miss it
        yield lock
    finally:
        holder.unlink(missing_ok=True)  # before the release: the next holder writes its own
        file_lock.release()


def exclusive(
    folder: str | os.PathLike, what: str = "a training"
) -> contextlib.AbstractContextManager[Path]:
    """Hold the run folder ``folder`` (made if absent) for this process while the block runs.

    Raises
    ------
    FolderLocked
        If another training holds it; the message names the folder and, if recorded, the
        holding process.
    """
    folder = Path(folder)
    return holding(
        folder / LOCK_FILE,
        f"run folder {folder}",
        what,
        "wait for it to finish, or train into another run (--run NAME)",
    )
