"""Collections: the bookkeeping cost per photo as a collection grows, and opening a big one.

    python benchmarks/photo_collections.py [--sizes 1000,10000,100000,1000000]
                                           [--baseline 1000,10000]

1. **Bookkeeping** (no network: synthetic descriptors and embeddings, d = 200): a collection
   built from empty in batches of 32 photos, each batch committed as `index` commits it
   (`capstone.search.store.Collection.add`), timed up to each size; the per-photo cost is
   given over the whole build (total / n) and over the last 1,024 photos before each size
   (the cost of a batch at that size). Against it, in the same run, the archive of earlier
   versions: the whole ``.npz`` rewritten after every batch (`OldCollection` below, a copy of
   the save logic capstone had, kept here as the baseline only).
2. **Opening** the largest collection for search, each in a fresh process: the first open
   (reading every row, building the (n, d) float32 matrix and writing its cache beside the
   database), then a cached open (the matrix memory-mapped); each then answers one query.
   Seconds and peak resident memory (``ru_maxrss`` of a small launcher's only child).

Files go to a temporary folder (about 3 GB at 1,000,000 photos), removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import _LAUNCHER  # noqa: E402 (the peak-memory launcher every benchmark uses)

from capstone.common.archive import save_archive  # noqa: E402
from capstone.search.store import Collection  # noqa: E402

D = 200  # the course's GloVe width: the embedding size of a run
BATCH = 32  # photos per commit, as `index` commits them
INFO = {"run": "benchmark", "model_sha256": "0" * 64}
WINDOW = 1024  # photos over which the marginal cost is taken


class OldCollection:
    """The baseline: the collection archive of earlier versions, rewritten whole after every
    batch (their ``Collection._extend`` and ``Collection.save``, copied here, not kept in the
    package)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.paths: list[str] = []
        self.sizes = np.zeros(0, np.int64)
        self.mtimes = np.zeros(0, np.int64)
        self.descriptors = np.zeros((0, 512), np.float32)
        self.embeddings = np.zeros((0, D), np.float32)

    def extend(self, paths, sizes, mtimes, descriptors, embeddings) -> None:
        self.paths = self.paths + list(paths)
        self.sizes = np.concatenate([self.sizes, sizes])
        self.mtimes = np.concatenate([self.mtimes, mtimes])
        self.descriptors = np.concatenate([self.descriptors, descriptors])
        self.embeddings = np.concatenate([self.embeddings, embeddings])

    def save(self, path: Path) -> None:
        arrays = {"paths": np.array(self.paths, dtype=str), "sizes": self.sizes,
                  "mtimes": self.mtimes, "descriptors": self.descriptors,
                  "embeddings": self.embeddings}  # fmt: skip
        meta = {**INFO, "folder": str(self.folder), "n_photos": len(self.paths)}
        save_archive(path, arrays, meta, kind="capstone.collection", overwrite=True)


def pool(seed: int = 0, n: int = 4096):
    """Synthetic rows, made before any clock starts: descriptors (n, 512), unit embeddings
    (n, d), float32."""
    rng = np.random.default_rng(seed)
    descriptors = rng.random((n, 512), dtype=np.float32)
    embeddings = rng.standard_normal((n, D), dtype=np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return descriptors, embeddings


def batches(n: int, descriptors: np.ndarray, embeddings: np.ndarray):
    """The batches of a folder of ``n`` photos: (paths, sizes, mtimes, descriptors,
    embeddings), rows taken in turn from the pool."""
    for lo in range(0, n, BATCH):
        hi = min(lo + BATCH, n)
        rows = np.arange(lo, hi) % len(descriptors)
        paths = [f"{i // 1000:04d}/photo{i:07d}.jpg" for i in range(lo, hi)]
        sizes = np.arange(lo, hi, dtype=np.int64) + 100_000
        yield paths, sizes, sizes * 1000, descriptors[rows], embeddings[rows]


def build(n_max: int, sizes: list[int], write, data) -> dict[int, tuple[float, float]]:
    """Grow a collection to ``n_max`` photos with ``write(batch)``; at each of ``sizes``:
    (seconds per photo over the whole build, seconds per photo over the last `WINDOW`)."""
    marks, out = sorted(sizes), {}
    elapsed, times = 0.0, []  # times: (photos so far, seconds so far) after each batch
    for batch in batches(n_max, *data):
        start = time.perf_counter()
        write(batch)
        elapsed += time.perf_counter() - start
        done = (times[-1][0] if times else 0) + len(batch[0])
        times.append((done, elapsed))
        if marks and done >= marks[0]:
            before = next((t for d, t in reversed(times) if d <= done - WINDOW), 0.0)
            out[marks.pop(0)] = (elapsed / done, (elapsed - before) / min(WINDOW, done))
    return out


def open_for_search(database: str) -> dict:
    """In a fresh process: open, the search matrix, one query; seconds of each."""
    start = time.perf_counter()
    with Collection.open(database) as collection:
        opened = time.perf_counter()
        matrix = collection.search_matrix()
        ready = time.perf_counter()
        q = np.ones(collection.d, np.float32)
        found = collection.query(q, 10)
        answered = time.perf_counter()
    return {"open": opened - start, "matrix": ready - opened, "query": answered - ready,
            "n": len(matrix.ids), "top": str(found[0][0])}  # fmt: skip


def in_fresh_process(database: Path) -> tuple[dict, int]:
    """`open_for_search` in a fresh interpreter: its result and peak RSS in KiB."""
    task = [sys.executable, __file__, "--open", str(database)]
    # the child imports the capstone this script runs with
    path = os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])
    launched = subprocess.run([sys.executable, "-c", _LAUNCHER, *task], stdout=subprocess.PIPE,
                              check=True, env={**os.environ, "PYTHONPATH": path})  # fmt: skip
    report = json.loads(launched.stdout)
    if report["code"] != 0:
        raise RuntimeError(f"opening {database} failed with exit code {report['code']}")
    return json.loads(report["out"].strip().splitlines()[-1]), report["maxrss"]


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--baseline", default="1000,10000", help="sizes for the old archive")
    parser.add_argument("--open", help=argparse.SUPPRESS)  # the fresh process of step 2
    args = parser.parse_args(argv)
    if args.open:
        print(json.dumps(open_for_search(args.open)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    old_sizes = [int(s) for s in args.baseline.split(",")]
    data = pool()
    print(f"# Collections: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores "
          f"(shared with other work), python benchmarks/photo_collections.py --sizes {args.sizes} "
          f"--baseline {args.baseline}\n")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        collection = Collection.create(tmp / "big.db", tmp / "photos", D, INFO)
        with collection:
            new = build(max(sizes), sizes, lambda b: collection.add(*b), data)
        size_mb = (tmp / "big.db").stat().st_size / 1e6
        old_collection = OldCollection(tmp / "photos")

        def old_write(batch) -> None:
            old_collection.extend(*batch)
            old_collection.save(tmp / "old.npz")

        old = build(max(old_sizes), old_sizes, old_write, data)
        print("| photos | database, per photo (whole build) | per photo (last 1,024) | "
              ".npz rewrite, per photo (whole build) | per photo (last 1,024) | ratio |")
        print("|---:|---:|---:|---:|---:|---:|")
        for n in sizes:
            whole, last = new[n]
            if n in old:
                o_whole, o_last = old[n]
                cells = f"{us(o_whole)} | {us(o_last)} | {o_whole / whole:,.1f}x"
            else:
                cells = "not run | not run | "
            print(f"| {n:,} | {us(whole)} | {us(last)} | {cells} |")
        first, last_size = sizes[0], sizes[-1]
        print(f"\nDatabase at {last_size:,}: {size_mb:,.0f} MB. Per photo at {last_size:,} "
              f"over per photo at {first:,} (whole build): "
              f"{new[last_size][0] / new[first][0]:.2f}x; last 1,024: "
              f"{new[last_size][1] / new[first][1]:.2f}x (target: within 2x).\n")  # fmt: skip
        print(f"| opening {max(sizes):,} photos for search | open | matrix | one query | "
              "total | peak memory |")
        print("|---|---:|---:|---:|---:|---:|")
        for label in ("first (builds the matrix cache)", "cached (memory-mapped)"):
            result, maxrss = in_fresh_process(tmp / "big.db")
            total = result["open"] + result["matrix"] + result["query"]
            print(f"| {label} | {result['open']:.3f} s | {result['matrix']:.2f} s | "
                  f"{result['query']:.2f} s | {total:.2f} s | {maxrss / 1024:,.0f} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
