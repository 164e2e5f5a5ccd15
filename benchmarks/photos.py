"""Photo descriptors: time per photo of capstone's NumPy ResNet-18, and photos/s on every core.

    python benchmarks/photos.py [--photos 192] [--repeats 3]

Writes ``--photos`` generated 640 x 480 JPEGs (smooth random colours) to a temporary folder and
times, in this one run:

- ``describe``: `PhotoDescriber.describe` (decode, EXIF, resize, crop, normalize, network), one
  photo at a time, against ``reference``, `resnet18_reference` (the unfolded network, one kernel
  offset at a time, in float64: the straightforward NumPy a student would write), on 3 photos;
- ``network``: `ResNet18.describe` alone, per photo at batch 1 and batch 8, with BLAS on every
  core and on one thread;
- ``folder``: the whole folder, photos/s, four ways: one process with BLAS on every core (the
  way ``describe``/``index`` ran before ``--workers``), one process on one BLAS thread (one
  worker), `capstone.photos.pool.describe_batches` on every core (the default), and on a
  2-worker Dask ``LocalCluster`` (1 thread each, on loopback; if ``distributed`` is installed);
- ``torch``: torchvision's ``resnet18`` on the CPU, per photo at batch 1 and 8, on the same
  preprocessed photos (only where torch is installed; the row says when it is skipped).

The folder rates are steady rates: the last three quarters of the photos, over the time since
the first quarter came back (starting processes and loading the weights once is a fixed cost,
said apart: the time to the first quarter). The header says how many cores' worth of work two
one-thread processes of matrix products got against one alone (2.0 on 2 free cores): on a
shared machine, the parallel rates can only be read against it. The
configurations take turns ``--repeats`` times and the medians are reported. The weights are
random with ResNet-18's real shapes (the time does not depend on their values).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the tests' random ResNet-18 weights

from resnet_support import random_state, write_safetensors  # noqa: E402

from capstone.photos.describer import PhotoDescriber  # noqa: E402
from capstone.photos.pool import default_workers, describe_batches  # noqa: E402
from capstone.photos.preprocess import load_photo  # noqa: E402
from capstone.photos.resnet import resnet18_reference  # noqa: E402


def make_photos(folder: Path, n: int) -> list[Path]:
    """``n`` 640 x 480 JPEGs of smooth random colour (quality 90)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC)
        paths.append(folder / f"photo{i:03d}.jpg")
        image.save(paths[-1], quality=90)
    return paths


def per_photo(f, batch: np.ndarray, times: int = 3) -> float:
    """Seconds per photo of ``f(batch)``, the fastest of ``times`` (after one warm-up)."""
    f(batch)
    best = np.inf
    for _ in range(times):
        start = time.perf_counter()
        f(batch)
        best = min(best, (time.perf_counter() - start) / len(batch))
    return best


def steady_rate(batches, n: int) -> tuple[float, float]:
    """(photos/s over the last three quarters of the photos, seconds until the first quarter
    came back) of a run of `describe_batches`: by then every worker has started and loaded the
    weights."""
    start = time.perf_counter()
    done, t_quarter, at_quarter = 0, None, 0
    for batch in batches:
        done += len(batch.paths)
        if t_quarter is None and done >= n / 4:
            t_quarter, at_quarter = time.perf_counter(), done
    assert done == n, "a photo was not described"
    return (n - at_quarter) / (time.perf_counter() - t_quarter), t_quarter - start


def _gemm_rate(seconds: float) -> float:
    """1024 x 1024 float32 products per second on one BLAS thread, for ``seconds``."""
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    with threadpool_limits(1):
        a @ a
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            a @ a
            n += 1
    return n / (time.perf_counter() - start)


def free_cores(processes: int, seconds: float = 4) -> float:
    """How many cores' worth of work ``processes`` one-thread processes get now, against one
    alone: the parallelism a shared machine actually offers (2.0 on 2 free cores)."""
    alone = _gemm_rate(seconds)
    with cf.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as p:
        together = sum(p.map(_gemm_rate, [seconds] * processes))
    return together / alone


def torch_network():
    """torchvision's resnet18 without its classifier, on the CPU, or None without torch."""
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Identity()
    model.eval()

    def describe(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()

    return describe, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=192, help="photos in the folder (192)")
    parser.add_argument("--repeats", type=int, default=3, help="turns of the folder runs (3)")
    args = parser.parse_args(argv)
    state = random_state()
    describer = PhotoDescriber(state)
    network = describer.network
    cores = default_workers()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        codes = {k: "I64" if v.dtype == np.int64 else "F32" for k, v in state.items()}
        weights = write_safetensors(tmp / "r18.safetensors", state, codes)
        paths = make_photos(tmp, args.photos)
        batch8 = np.stack([load_photo(p) for p in paths[:8]])
        describer.describe(paths[0])  # warm-up: BLAS threads, caches
        times = {"describe": [], "preprocess": [], "reference": []}
        for i, path in enumerate(paths[:24]):
            start = time.perf_counter()
            describer.describe(path)
            times["describe"].append(time.perf_counter() - start)
            start = time.perf_counter()
            x = load_photo(path)
            times["preprocess"].append(time.perf_counter() - start)
            if i < 3:
                start = time.perf_counter()
                resnet18_reference(state, x[None])
                times["reference"].append(time.perf_counter() - start)
        net = {}
        for threads in (None, 1):
            with threadpool_limits(threads):
                net[threads, 1] = [per_photo(network.describe, batch8[i : i + 1]) for i in range(3)]
                net[threads, 8] = [per_photo(network.describe, batch8)]
        torch = torch_network()
        if torch is not None:
            net["torch", 1] = [per_photo(torch[0], batch8[i : i + 1]) for i in range(3)]
            net["torch", 8] = [per_photo(torch[0], batch8)]

        cluster = None
        try:
            from distributed import LocalCluster

            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None, host="127.0.0.1")  # fmt: skip
        except ImportError:
            pass

        def here():
            return describe_batches(paths, state, workers=1)

        def every_core():
            return describe_batches(paths, weights, workers=cores)

        runs = {
            "one process, BLAS on every core": here,
            "one process, one BLAS thread": here,  # under threadpool_limits(1), below
            f"{cores} workers (every core)": every_core,
        }
        if cluster is not None:
            address = cluster.scheduler_address
            runs["Dask LocalCluster, 2 workers"] = lambda: describe_batches(
                paths, weights, dask=address
            )
        rates = {name: [] for name in runs}
        starts = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, make in runs.items():
                with threadpool_limits(1 if "one BLAS thread" in name else None):
                    rate, first = steady_rate(make(), len(paths))
                rates[name].append(rate)
                starts[name].append(first)
        if cluster is not None:
            cluster.close()
    parallel = free_cores(cores)

    med = {name: float(np.median(r)) for name, r in rates.items()}
    today, one_thread, *_ = med.values()
    ms = {key: float(np.median(v)) * 1e3 for key, v in net.items()}
    describe_median = float(np.median(times["describe"]))
    reference_median = float(np.median(times["reference"]))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"{args.photos} photos, 640 x 480 JPEG, {when}, {cores} cores "
          f"(os.cpu_count() {os.cpu_count()}), medians of {args.repeats} turns; {cores} "
          f"one-thread processes of matrix products got {parallel:.2f} cores' worth of work "
          "(how many cores were free)")  # fmt: skip
    print("| measure | capstone | baseline | ratio | target | met? |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| one photo, file to descriptor | {describe_median * 1e3:.0f} ms | "
        f"reference network alone {reference_median * 1e3:.0f} ms | "
        f"{reference_median / describe_median:.1f}x faster | < 300 ms | "
        f"{'yes' if describe_median < 0.3 else '**no**'} |"
    )
    print(f"| of which preprocessing | {np.median(times['preprocess']) * 1e3:.0f} ms | - | - | - "
          "| - |")  # fmt: skip
    for threads, label in ((None, "BLAS on every core"), (1, "one BLAS thread")):
        b1, b8 = ms[threads, 1], ms[threads, 8]
        print(f"| network per photo, batch 8, {label} | {b8:.0f} ms | batch 1: {b1:.0f} ms | "
              f"{b1 / b8:.2f}x | >= 1x | {'yes' if b8 <= b1 else '**no**'} |")  # fmt: skip
    if torch is not None:
        for b in (1, 8):
            print(f"| network per photo, batch {b}, BLAS on every core | {ms[None, b]:.0f} ms | "
                  f"{torch[1]}: {ms['torch', b]:.0f} ms | {ms['torch', b] / ms[None, b]:.2f}x | "
                  "- | - |")  # fmt: skip
    else:
        print("| torch's CPU network | skipped: torch is not installed here | - | - | - | - |")
    targets = {
        f"{cores} workers (every core)": [(today, "one process, BLAS on every core", 1.3),
                                          (one_thread, "one process, one BLAS thread", 1.8)],
    }  # fmt: skip
    every_core = med[f"{cores} workers (every core)"]
    for name, rate in med.items():
        start = f" (first quarter in {np.median(starts[name]):.1f} s)"
        checks = targets.get(name)
        if name == "Dask LocalCluster, 2 workers":
            checks = [(every_core, f"{cores} workers", 0.85)]
        if not checks:
            print(f"| a folder: {name} | {rate:.1f} photos/s{start} | - | - | - | - |")
            continue
        for base, base_name, goal in checks:
            print(f"| a folder: {name} | {rate:.1f} photos/s{start} | {base_name}: {base:.1f} | "
                  f"{rate / base:.2f}x | >= {goal}x | {'yes' if rate >= goal * base else '**no**'} "
                  "|")  # fmt: skip
    if cluster is None:
        print("| a folder: Dask LocalCluster | skipped: distributed is not installed | - | - | - "
              "| - |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
