"""What every benchmark stage shares: the results row, timing and formatting, child processes
(for peak memory and fresh-process timings), interleaved step timing, the machine's description
and the report."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: A training step: (captions, true descriptors, confusor descriptors) -> (loss, accuracy).
StepFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, float]]


@dataclass
class Row:
    """One line of the results table.

    Attributes
    ----------
    stage : str
    capstone, baseline : str
        The measurements, formatted.
    ratio : str
        capstone against its baseline (how many times faster, or its share of the floor).
    target : str
        The goal, as text.
    met : bool | None
        Whether the goal is met; None when there is no goal.
    memory : str
        Peak memory of this stage, where it is cheap to know.
    """

    stage: str
    capstone: str
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: bool | None = None
    memory: str = "-"


def log(message: str) -> None:
    """Print a progress line to stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Best (least) wall time of ``repeat`` calls of ``fn`` and the result of the last one.

    Other work on the machine only ever adds time, so the least is the steadiest estimate.
    """
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def fmt_seconds(seconds: float) -> str:
    """A duration with a sensible unit: ``"812 µs"``, ``"3.4 ms"``, ``"1.25 s"``, ``"2.1 min"``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.1f} min"


def fmt_mb(kilobytes: float) -> str:
    """``ru_maxrss`` (KiB on Linux) in MiB."""
    return f"{kilobytes / 1024:,.0f} MiB"


def speedup(baseline: float, ours: float) -> str:
    """``baseline / ours`` as ``"12.3x faster"`` (or ``"0.8x (slower)"``)."""
    ratio = baseline / ours
    return f"{ratio:,.1f}x faster" if ratio >= 1 else f"{ratio:.2f}x (slower)"


# ---------------------------------------------------------------------------------------------
# Subprocesses
# ---------------------------------------------------------------------------------------------

CHILDREN: dict[str, Callable[[dict], dict]] = {}


def child(fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
    """Register ``fn`` as a task that `run_child` can run in a fresh interpreter."""
    CHILDREN[fn.__name__] = fn
    return fn


# Runs its arguments as a command and reports the command's stdout, exit code and peak RSS.
# On Linux a child's ru_maxrss starts at its parent's RSS at the fork (exec keeps the high-water
# mark of the forked image), so a child of this large process would report at least this
# process's size; a child of this small launcher reports its own peak.
_LAUNCHER = """\
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": p.returncode, "out": p.stdout.decode(), "maxrss": peak}))
"""


def run_child(name: str, **kwargs) -> tuple[dict, int]:
    """Run the registered task ``name`` in a fresh Python process.

    Returns
    -------
    result : dict
        What the task returned (sent back as JSON on stdout).
    maxrss : int
        The task's peak resident set size in KiB: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of
        a small launcher process whose only child is the task.
    """
    task = [sys.executable, str(HERE / "run.py"), "--child", name, json.dumps(kwargs)]
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *task], stdout=subprocess.PIPE, check=True
    )
    report = json.loads(launched.stdout)
    if report["code"] != 0:
        raise RuntimeError(f"child task {name!r} failed with exit code {report['code']}")
    return json.loads(report["out"].strip().splitlines()[-1]), report["maxrss"]


def blas_threads(n: int | None):
    """A context limiting BLAS to ``n`` threads (None: leave the default)."""
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def run_interleaved(
    steps: dict[str, tuple[StepFn, int | None]],
    batches: Callable[[int, int], Iterator[tuple]],
    n: int,
    chunk: int,
) -> dict[str, tuple[np.ndarray, float]]:
    """Run every step function on batches ``0..n-1``, taking turns every ``chunk`` batches.

    Turns (in alternating order) expose all of them to the same conditions: on a small shared
    machine, the speed of small BLAS calls drifts by 2x or more over seconds.

    Parameters
    ----------
    steps : dict
        name -> (step function, BLAS threads to run it with, None for the default).

    Returns
    -------
    dict
        For each name: the seconds of each chunk, shape (ceil(n / chunk),), and the mean loss.
    """
    names = list(steps)
    times = {name: [] for name in names}
    losses = dict.fromkeys(names, 0.0)
    for k, lo in enumerate(range(0, n, chunk)):
        for name in names if k % 2 == 0 else names[::-1]:
            step, threads = steps[name]
            with blas_threads(threads):
                start = time.perf_counter()
                for batch in batches(lo, min(lo + chunk, n)):
                    losses[name] += step(*batch)[0]
                times[name].append(time.perf_counter() - start)
    return {name: (np.array(times[name]), losses[name] / n) for name in names}


# ---------------------------------------------------------------------------------------------


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process and children).

    Their growth over a run tells how much other processes competed for the cores.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
        busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4)) / ticks
    except (OSError, ValueError):
        busy = float("nan")
    ours = sum(
        u.ru_utime + u.ru_stime
        for u in (resource.getrusage(resource.RUSAGE_SELF),
                  resource.getrusage(resource.RUSAGE_CHILDREN))
    )  # fmt: skip
    return busy, ours


def machine() -> str:
    """Cores, CPU model, Python, NumPy and the other libraries that are timed."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    for name in ("mygrad", "mynn", "gensim", "torch"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except (ImportError, AttributeError):
            versions.append(f"{name} not installed" if name == "torch" else f"{name} ?")
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()}; " + ", ".join(versions)


def markdown_table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    head = "| stage | capstone | baseline | ratio | target | met? | peak memory |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "-"}[r.met]
        lines.append(
            f"| {r.stage} | {r.capstone} | {r.baseline} | {r.ratio} | {r.target} | {met} "
            f"| {r.memory} |"
        )
    return "\n".join(lines)


def report(
    rows: list[Row], notes: list[str], *, command: str, wall: float, others: float, out: Path
) -> str:
    """Format the results (table, notes, machine) and write them to ``out``.

    ``others`` is the CPU time other processes used during the run, in seconds.
    """
    text = "\n".join(
        [
            "# capstone benchmarks",
            "",
            f"- command: `{command}`",
            f"- date: {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
            f"- machine: {machine()}",
            f"- wall time of the whole run: {fmt_seconds(wall)}",
            f"- other processes on the machine used {others:,.0f} CPU-seconds meanwhile "
            f"({others / wall:.0%} of one core); timings are noisier when that is high",
            "",
            markdown_table(rows),
            "",
            "Notes:",
            "",
            *[f"- {n}" for n in notes],
            "",
        ]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text
