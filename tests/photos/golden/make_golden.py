"""Make the golden fixture: torchvision's own answer for a handful of photos, to test capstone
against without torch.

    python -m venv /tmp/torchvenv   # a private venv: torch stays out of capstone's
    /tmp/torchvenv/bin/pip install torch torchvision numpy pillow
    /tmp/torchvenv/bin/python tests/photos/golden/make_golden.py

Run once, where torch is installed (never a dependency of capstone or its CI). It writes, beside
itself:

- ``*.png``: six generated photos in the modes and shapes capstone converts (RGB landscape and
  portrait, ``L``, ``RGBA``, ``P`` with a transparent colour, a panorama), sized so that the
  resize truncates and the centre crop rounds a half to even, and stored as PNG: lossless, so
  every Pillow decodes the same pixels (JPEG decoders differ between libjpeg builds);
- ``resnet18.npz``: for each photo, torchvision's preprocessed tensor
  (``Resize(256) -> CenterCrop(224) -> ToTensor() -> Normalize(mean, std)`` after
  ``torchvision.datasets.folder.pil_loader``) and the 512-d output of ``resnet18`` with ``fc``
  replaced by the identity (the global average pool), all float32; the weights' seed, a
  fingerprint of the weights, and the versions used.

The weights are not stored: ``resnet_support.random_state(seed)`` (tests/resnet_support.py, NumPy
only) draws them again in the test, with non-trivial batch-norm statistics (running means and
variances, gammas and betas away from 0 and 1), so that a wrong batch-norm epsilon or folding
changes the answer.

torch is imported in `main`, not at the top: pytest imports every module under tests/ for its
doctests, where torch is absent.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/: the seeded weights of resnet_support
from resnet_support import random_state, state_fingerprint  # noqa: E402

SEED = 2026
FIXTURE = HERE / "resnet18.npz"
MEAN = [0.485, 0.456, 0.406]  # torchvision's ImageNet normalization, as its docs give it
STD = [0.229, 0.224, 0.225]

# (file, mode, width x height): what each exercises is the resized size (short side 256, long
# side truncated) and the crop's top-left corner int(round((side - 224) / 2)), halves to even
PHOTOS = [
    ("landscape_rgb.png", "RGB", (320, 240)),  # 341 x 256 (341.33), left 58.5 -> 58
    ("portrait_rgb.png", "RGB", (200, 268)),  # upscaled: 256 x 343 (343.04), top 59.5 -> 60
    ("gray_l.png", "L", (300, 257)),  # 298 x 256 (298.83), a slight downscale, left 37
    ("square_rgba.png", "RGBA", (256, 256)),  # already 256: not resized; alpha dropped
    ("palette_p.png", "P", (250, 400)),  # 256 x 409 (409.6), top 92.5 -> 92; transparent index
    ("panorama_rgb.png", "RGB", (700, 182)),  # 984 x 256 (984.6), left 380
]


def make_photo(rng: np.random.Generator, mode: str, size: tuple[int, int]) -> Image.Image:
    """A smooth colour field with fine noise and a sharp edge (so the resize filter matters)."""
    width, height = size
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), np.int16)
    field = field + rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
    field[: height // 3, width // 2 :] //= 3  # a dark block with hard edges
    rgb = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    if mode == "RGBA":
        alpha = rng.integers(0, 256, (height, width), dtype=np.uint8)
        return Image.merge("RGBA", (*rgb.split(), Image.fromarray(alpha)))
    if mode == "P":
        image = rgb.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        image.info["transparency"] = 5  # one palette entry transparent: capstone goes via RGBA
        return image
    return rgb.convert(mode)


def main() -> None:
    import torch
    import torchvision
    from torchvision import transforms
    from torchvision.datasets.folder import pil_loader

    rng = np.random.default_rng(SEED)
    paths = []
    for name, mode, size in PHOTOS:
        image = make_photo(rng, mode, size)
        image.save(HERE / name, optimize=True)
        paths.append(HERE / name)

    preprocess = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )
    tensors = torch.stack([preprocess(pil_loader(path)) for path in paths])

    state = random_state(SEED)
    model = torchvision.models.resnet18(weights=None)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    model.fc = torch.nn.Identity()  # the descriptor: the 512-d global average pool
    model.eval()
    with torch.no_grad():
        descriptors = model(tensors)

    versions = (
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"Pillow {Image.__version__}, NumPy {np.__version__}, {platform.machine()}"
    )
    np.savez_compressed(
        FIXTURE,
        names=np.array([name for name, _, _ in PHOTOS]),
        tensors=tensors.numpy().astype(np.float32),
        descriptors=descriptors.numpy().astype(np.float32),
        seed=np.array(SEED),
        fingerprint=state_fingerprint(state),
        versions=np.array(versions),
    )
    total = sum(p.stat().st_size for p in [*paths, FIXTURE])
    print(f"wrote {FIXTURE} and {len(paths)} photos ({total / 1e6:.2f} MB) with {versions}")


if __name__ == "__main__":
    main()
