"""Tests for capstone.common.memory: the operating system's memory, asked and tuned."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from capstone.common.memory import available_memory, release_freed_memory, reuse_freed_memory

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")


@linux
def test_available_memory_is_meminfos_figure_in_bytes():
    with open("/proc/meminfo") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    # the figure moves as other processes run: within 10% of a reading taken just before
    assert abs(available_memory() - kb * 1024) < 0.1 * kb * 1024


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
