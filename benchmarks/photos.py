"""Photo descriptors: time per photo of capstone's NumPy ResNet-18, against the plain reference.

    python benchmarks/photos.py [--photos 24]

Writes ``--photos`` generated 640 x 480 JPEGs (smooth random colours) to a temporary folder and
times, in this one process, taking turns photo by photo:

- ``describe``: `PhotoDescriber.describe` (decode, EXIF, resize, crop, normalize, network);
- ``network``: `ResNet18.describe` alone, at batch 1 and batch 8 (per photo);
- ``reference``: `resnet18_reference` (the unfolded network, one kernel offset at a time, in
  float64: the straightforward NumPy a student would write), on the first 3 photos;
- ``folder``: `PhotoDescriber.describe_paths` over all of them (photos/s).

The weights are random with ResNet-18's real shapes (the time does not depend on their values;
the real ones need a download). Target: under 0.3 s per photo on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the tests' random ResNet-18 weights

from resnet_support import random_state  # noqa: E402

from capstone.photos.describer import PhotoDescriber  # noqa: E402
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


def median_ms(times: list[float]) -> str:
    return f"{np.median(times) * 1e3:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=24, help="photos to describe (24)")
    args = parser.parse_args(argv)
    state = random_state()
    describer = PhotoDescriber(state)
    network = describer.network
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_photos(Path(tmp), args.photos)
        batch = np.stack([load_photo(p) for p in paths[:8]])
        describer.describe(paths[0])  # warm-up: BLAS threads, caches
        times = {"describe": [], "preprocess": [], "network": [], "reference": []}
        for i, path in enumerate(paths):
            start = time.perf_counter()
            describer.describe(path)
            times["describe"].append(time.perf_counter() - start)
            start = time.perf_counter()
            x = load_photo(path)
            times["preprocess"].append(time.perf_counter() - start)
            start = time.perf_counter()
            network.describe(x[None])
            times["network"].append(time.perf_counter() - start)
            if i < 3:
                start = time.perf_counter()
                resnet18_reference(state, x[None])
                times["reference"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(3):
            network.describe(batch)
        per_photo_batch8 = (time.perf_counter() - start) / (3 * len(batch))
        start = time.perf_counter()
        _, described, failures = describer.describe_paths(paths, progress=False)
        folder_seconds = time.perf_counter() - start
    assert len(described) == len(paths) and not failures
    describe_median = float(np.median(times["describe"]))
    reference_median = float(np.median(times["reference"]))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"{args.photos} photos, 640 x 480 JPEG, {when}")
    print("| measure | capstone | baseline | ratio | target | met? |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| one photo, file to descriptor | {median_ms(times['describe'])} | "
        f"reference network alone {median_ms(times['reference'])} | "
        f"{reference_median / describe_median:.1f}x faster | < 300 ms | "
        f"{'yes' if describe_median < 0.3 else '**no**'} |"
    )
    print(f"| of which preprocessing | {median_ms(times['preprocess'])} | - | - | - | - |")
    print(f"| network, batch 1 | {median_ms(times['network'])} | - | - | - | - |")
    print(f"| network, batch 8 (per photo) | {per_photo_batch8 * 1e3:.0f} ms | - | - | - | - |")
    print(f"| a folder (describe_paths) | {len(paths) / folder_seconds:.1f} photos/s | - | - | "
          "- | - |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
