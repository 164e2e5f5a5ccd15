"""Memory and the operating system: what is available, and giving freed heap memory back."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["available_memory", "release_freed_memory", "reuse_freed_memory"]


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
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


# glibc's mallopt parameters (malloc.h) and the values its dynamic threshold settles at
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems


def reuse_freed_memory() -> bool:
    """Let the heap keep freed blocks of up to 32 MiB for reuse (glibc's ``mallopt``); True if
    it ran.

    glibc gives each block over its mmap threshold its own pages, returned to the OS when
    freed; it raises that threshold (up to 32 MiB) as large blocks are freed, so a loop that
    allocates and frees the same arrays soon reuses them. Setting any of ``MALLOC_*_`` in the
    environment turns that adaptation off, and Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_``
    for its workers (and in the process that starts a ``LocalCluster``, whose children inherit
    it): the threshold then stays at 128 KiB, and every array of the network (a photo's
    activations and im2col copies, up to 25 MB) is fresh pages the kernel must zero. Measured
    on 2 cores: describing at 9-11 photos/s instead of 17-18. This pins the threshold where
    glibc's adaptation would take it (trim at twice it, glibc's rule). Elsewhere (macOS,
    Windows, musl) this does nothing.

    >>> isinstance(reuse_freed_memory(), bool)
    True
    """
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX)
    return True


def _glibc(function: str):
    """glibc's ``function`` through ctypes, or None on another system or C library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c")), function)
    except (OSError, AttributeError, TypeError):
        return None
