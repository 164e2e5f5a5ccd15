"""Tests for capstone.common.memory: the operating system's memory, asked and tuned."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pytest

from capstone.common import memory
from capstone.common.memory import available_memory, release_freed_memory, reuse_freed_memory

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")


@linux
def test_available_memory_is_meminfos_figure_in_bytes():
    with open("/proc/meminfo") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    # the figure moves as other processes run: within 10% of a reading taken just before
    assert abs(available_memory() - kb * 1024) < 0.1 * kb * 1024


MEMINFO = "MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n"


@pytest.mark.parametrize(
    ("meminfo", "expected"),
    [
        (MEMINFO, 20_000_000 * 1024),  # kB, after other lines
        ("MemTotal: 5 kB\n", None),  # a kernel older than MemAvailable
        ("MemAvailable: lots kB\n", None),
        ("MemAvailable:\n", None),
        (OSError(2, "No such file or directory"), None),  # no /proc
    ],
)
def test_available_memory_reads_memavailable_or_says_it_cannot_tell(
    monkeypatch, meminfo, expected
):
    def fake_open(path, *args, **kwargs):
        assert path == "/proc/meminfo"
        if isinstance(meminfo, OSError):
            raise meminfo
        return io.StringIO(meminfo)

    monkeypatch.setattr(memory, "open", fake_open, raising=False)  # the module's, not builtins'
    assert available_memory() == expected


class _Glibc:
    """Stands in for `memory._glibc`: records the calls instead of making them."""

    def __init__(self):
        self.calls = []

    def __call__(self, function):
        return lambda *args: self.calls.append((function, args))


def test_release_trims_the_whole_heap(monkeypatch):
    glibc = _Glibc()
    monkeypatch.setattr(memory, "_glibc", glibc)
    assert release_freed_memory() is True
    assert glibc.calls == [("malloc_trim", (0,))]  # 0: keep no padding at the heap's top


def test_reuse_pins_the_mmap_threshold_at_32_mib_and_trims_at_twice_it(monkeypatch):
    glibc = _Glibc()
    monkeypatch.setattr(memory, "_glibc", glibc)
    assert reuse_freed_memory() is True
    # M_MMAP_THRESHOLD is -3, M_TRIM_THRESHOLD -1 in glibc's malloc.h
    assert glibc.calls == [("mallopt", (-3, 32 << 20)), ("mallopt", (-1, 64 << 20))]


def test_without_glibc_nothing_runs(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert memory._glibc("malloc_trim") is None
    assert release_freed_memory() is False
    assert reuse_freed_memory() is False


@linux
def test_a_function_glibc_lacks_is_none():
    assert memory._glibc("malloc_trim") is not None
    assert memory._glibc("no_such_function_in_libc") is None


@linux
def test_release_and_reuse_run_on_glibc():
    assert release_freed_memory() is True
    assert reuse_freed_memory() is True


# Page faults of 20 rounds of allocating and freeing a 1 MB array: a fresh mapping each round
# (thousands of faults) or the same heap block reused (a few hundred, the first round's).
_FAULTS = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from capstone.common.memory import reuse_freed_memory
    if sys.argv[1] == "reuse":
        reuse_freed_memory()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        block = np.ones(1 << 18, np.float32)  # 1 MB: under NumPy's huge-page size
        del block
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _faults(mode: str) -> int:
    # Dask's nanny sets this for its workers: glibc's mmap threshold then stops adapting
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], env=env, capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@linux
def test_reuse_keeps_large_freed_blocks_when_the_environment_pins_the_threshold():
    fresh, reused = _faults("fresh"), _faults("reuse")
    assert fresh > 2560  # at least half the rounds mapped (and the kernel zeroed) new pages
    assert reused < fresh / 4
