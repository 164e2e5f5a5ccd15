"""Memory and the operating system: what is available, and giving freed heap memory back."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["available_memory", "release_freed_memory"]


def available_memory() -> int | None:
    """Bytes the system can give this process without swapping (Linux ``MemAvailable``).

    None where it cannot tell (another system, no ``/proc``): a check then lets things be.

    >>> m = available_memory(); m is None or m > 0
    True
    """
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the OS (glibc's ``malloc_trim(0)``); True if it ran.

    Loading COCO frees much of what it allocated (the parsed JSON, the pickle's 82,783 small
    arrays once stacked into one), but glibc keeps those pages: a long-running server would
    hold ~170 MB it does not use. Elsewhere (macOS, Windows, musl) this does nothing.

    >>> isinstance(release_freed_memory(), bool)
    True
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    trim(0)
    return True
