"""mini-COCO's files: the demo dataset, generated in exactly the formats of the course files.

No photo, COCO download or pretrained image network is available offline, so the demo's data
are *generated* by a seeded generator. `generate` writes into a folder:

- ``captions_train2014.json`` (`CAPTIONS_FILE`), in the format of COCO's captions file:
  ``{"info", "images", "licenses", "annotations"}``; each image ``{license, file_name,
  coco_url, height, width, date_captured, flickr_url, id}``, each annotation ``{image_id, id,
  caption}``, at least 5 captions per image. URLs point at the host ``minicoco.invalid``
  (the ``.invalid`` domain never resolves): a generated image has no photo.
- ``resnet18_features.pkl`` (`FEATURES_FILE`): a pickled dict, int image id -> float32 array of
  shape (1, 512), non-negative. As in the real file, about 0.2% of the images have none.
- ``minicoco_scenes.json`` (`SCENES_FILE`): the latent truth behind each image::

      {"description": str, "seed": int, "images": [
          {"image_id": int, "scene": str, "has_descriptor": bool,
           "objects": [{"category": str, "count": 1 | 2 | 3 | "several", "colour": str | null}],
           "distractors": [same as objects]}, ...]}

  ``objects`` are what the captions talk about, most salient first; ``distractors`` are in the
  "picture" (the descriptor) but never in a caption.

Each image is a latent scene, drawn with its descriptor by `capstone.data.minicoco.scenes`
(the model of an image, and the map from scenes to descriptors); its captions are written from
the scene by `capstone.data.minicoco.captions`.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from capstone.common.archive import atomic_write
from capstone.common.checks import count
from capstone.data.minicoco.captions import caption_texts
from capstone.data.minicoco.scenes import (
    COUNT_LABELS,
    SCENES,
    Scenes,
    draw_scenes,
    scene_descriptors,
)
from capstone.data.minicoco.words import CATEGORIES, COLOURS
from capstone.data.paths import CAPTIONS_FILE, FEATURES_FILE

__all__ = [
    "COCO_SCALE",
    "MAX_CAPTIONS",
    "MAX_IMAGES",
    "SCENES_FILE",
    "check_n_images",
    "generate",
]

SCENES_FILE = "minicoco_scenes.json"
COCO_SCALE = (82_783, 414_113)  # images, captions in the real captions_train2014.json
# The largest dataset generated: peak memory is ~10 KB per image (0.8 GB at COCO's size,
# measured), so about 2 GB here; a larger count is refused before anything is allocated.
MAX_IMAGES, MAX_CAPTIONS = 200_000, 1_000_000
_MEMORY_WHY = " (the generator needs about 10 KB of memory per image; COCO has 82,783)"

_URL = "http://images.minicoco.invalid/train2014/"
_FLICKR_URL = "http://flickr.minicoco.invalid/train2014/"
_INFO = {
    "description": "mini-COCO: a GENERATED demo dataset in the format of the MS-COCO 2014 "
    "captions file. Captions and descriptors are generated from random latent scenes by "
    "capstone.data.minicoco; there are no photos, and the descriptors are not from a real network.",
    "url": "http://minicoco.invalid",
    "version": "1.0",
    "year": 2014,
    "contributor": "capstone.data.minicoco (generated)",
}
_LICENSES = [
    {
        "url": "http://minicoco.invalid/license",
        "id": 1,
        "name": "Generated demo data, no photograph: free to use",
    }
]
# (width, height, relative frequency): the commonest COCO image sizes.
_IMAGE_SIZES = ((640, 480, 40), (480, 640, 12), (640, 427, 15), (427, 640, 6), (500, 375, 8),
                (375, 500, 3), (612, 612, 4), (640, 426, 5), (640, 360, 4),
                (500, 333, 3))  # fmt: skip
_FIRST_CAPTURE, _CAPTURE_DAYS = np.datetime64("2013-11-14T00:00:00"), 45
_IMAGE_ID_SPACE, _CAPTION_ID_SPACE = 600_000, 1_000_000  # ids are below these, as in COCO


def _distinct_ids(rng: np.random.Generator, k: int, space: int) -> np.ndarray:
    """k distinct positive ints below ``space`` (widened if k is too large for it)."""
    return rng.choice(max(space, 2 * k) - 1, size=k, replace=False) + 1


def _n_without_descriptor(n_images: int) -> int:
    # As in the real files (171 of 82,783 images); at least one once there are 200 images.
    return max(round(n_images * 171 / COCO_SCALE[0]), int(n_images >= 200))


def _image_records(rng: np.random.Generator, image_ids: np.ndarray) -> list[dict]:
    n = len(image_ids)
    sizes = np.array(_IMAGE_SIZES)
    size = sizes[rng.choice(len(sizes), size=n, p=sizes[:, 2] / sizes[:, 2].sum()), :2]
    seconds = rng.integers(0, _CAPTURE_DAYS * 86_400, size=n).astype("timedelta64[s]")
    dates = np.datetime_as_string(_FIRST_CAPTURE + seconds, unit="s").tolist()
    records = []
    for i, (width, height), date in zip(image_ids.tolist(), size.tolist(), dates, strict=True):
        name = f"COCO_train2014_{i:012d}.jpg"
        records.append({
            "license": 1,
            "file_name": name,
            "coco_url": _URL + name,
            "height": height,
            "width": width,
            "date_captured": date.replace("T", " "),
            "flickr_url": _FLICKR_URL + name,
            "id": i,
        })  # fmt: skip
    return records


def _scene_records(scenes: Scenes, image_ids: np.ndarray, has_descriptor: np.ndarray) -> list[dict]:
    category, count = scenes.category.tolist(), scenes.count.tolist()
    colour, present = scenes.colour.tolist(), scenes.present.tolist()

    def objects(i: int, slots: range) -> list[dict]:
        return [
            {
                "category": CATEGORIES[category[i][j]],
                "count": COUNT_LABELS[count[i][j]],
                "colour": COLOURS[colour[i][j]] if colour[i][j] >= 0 else None,
            }
            for j in slots
            if present[i][j]
        ]

    return [
        {
            "image_id": image_id,
            "scene": SCENES[scene],
            "objects": objects(i, range(3)),
            "distractors": objects(i, range(3, 5)),
            "has_descriptor": has,
        }
        for i, (image_id, scene, has) in enumerate(
            zip(image_ids.tolist(), scenes.scene.tolist(), has_descriptor.tolist(), strict=True)
        )
    ]


def check_n_images(n_images) -> int:
    """``n_images`` as an int in ``[10, MAX_IMAGES]``: the sizes `generate` makes.

    Checked before anything is allocated (a huge count would fail deep inside NumPy).

    >>> check_n_images(20_000)
    20000
    >>> check_n_images(10**11)
    Traceback (most recent call last):
        ...
    ValueError: `n_images` must be a whole number from 10 to 200,000 (the generator needs about 10 KB of memory per image; COCO has 82,783), got 100,000,000,000
    """  # noqa: E501
    return count("n_images", n_images, least=10, most=MAX_IMAGES, why=_MEMORY_WHY)


def generate(
    out_dir,
    n_images: int = 10_000,
    *,
    n_captions: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Write the mini-COCO files into ``out_dir`` (created if needed).

    Writes `CAPTIONS_FILE`, `FEATURES_FILE` and `SCENES_FILE` (formats in the module
    docstring). Each file is written to a temporary file in ``out_dir`` and then renamed, so an
    interrupted run never leaves half a file. The same seed gives byte-identical files.

    Parameters
    ----------
    out_dir : path-like
        Destination folder.
    n_images : int, optional (default=10_000)
        Number of images, at least 10 and at most `MAX_IMAGES` (200,000; COCO: 82,783, see
        `COCO_SCALE`).
    n_captions : int, optional
        Number of captions, at least (and by default) ``5 * n_images``, at most `MAX_CAPTIONS`
        (1,000,000); each image gets 5, and the extra ones go to random images.
    seed : int, optional (default=0)
        Seed of the dataset (scenes, captions, ids, noise). The map from scenes to descriptors
        is fixed: it is the same for every seed.
    overwrite : bool, optional (default=False)
        Whether existing files may be replaced.

    Returns
    -------
    dict
        ``captions``, ``features``, ``scenes`` (the paths written), ``n_images``,
        ``n_captions``, ``n_without_descriptor`` (images in the captions file that have no
        descriptor, about 0.2% as in the real files) and ``seed``.

    Raises
    ------
    FileExistsError
        If one of the files exists and ``overwrite`` is False (nothing is written).
    ValueError
        For a bad argument; the message names it (`capstone.common.checks.count`).

    Examples
    --------
    With real data (shown, not run as a test)::

        generate(tmp_path, 1_000, seed=1)["n_without_descriptor"]
    2
    """
    n_images = check_n_images(n_images)
    if n_captions is None:
        n_captions = 5 * n_images
    n_captions = count(
        "n_captions", n_captions, least=5 * n_images, most=MAX_CAPTIONS, why=" (COCO has 414,113)"
    )
    seed = count("seed", seed, least=0)
    out_dir = Path(out_dir).expanduser()
    paths = {
        "captions": out_dir / CAPTIONS_FILE,
        "features": out_dir / FEATURES_FILE,
        "scenes": out_dir / SCENES_FILE,
    }
    existing = [p for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} already exists; pass overwrite=True to replace it")

    rng = np.random.default_rng(seed)
    scenes = draw_scenes(rng, n_images)
    descriptors = scene_descriptors(scenes, rng)
    image_ids = _distinct_ids(rng, n_images, _IMAGE_ID_SPACE)
    has_descriptor = np.ones(n_images, dtype=bool)
    has_descriptor[rng.choice(n_images, _n_without_descriptor(n_images), replace=False)] = False
    per_image = 5 + np.bincount(rng.integers(0, n_images, n_captions - 5 * n_images),
                                minlength=n_images)  # fmt: skip
    caption_image = rng.permutation(np.repeat(np.arange(n_images), per_image))
    caption_ids = np.sort(_distinct_ids(rng, n_captions, _CAPTION_ID_SPACE))
    texts = caption_texts(rng, scenes, caption_image)
    captions = {
        "info": _INFO,
        "images": _image_records(rng, image_ids),
        "licenses": _LICENSES,
        "annotations": [
            {"image_id": i, "id": k, "caption": text}
            for i, k, text in zip(
                image_ids[caption_image].tolist(), caption_ids.tolist(), texts, strict=True
            )
        ],
    }
    # Row views: pickle stores each as a (1, 512) array of its own.
    features = {
        i: descriptors[row : row + 1]
        for row, i in enumerate(image_ids.tolist())
        if has_descriptor[row]
    }
    sidecar = {
        "description": "The latent scene behind each image of the generated mini-COCO dataset "
        "(see capstone.data.minicoco): objects are named by captions, distractors are not.",
        "seed": seed,
        "images": _scene_records(scenes, image_ids, has_descriptor),
    }

    def write_json(doc: dict):
        return lambda f: f.write(json.dumps(doc, separators=(",", ":")).encode("utf-8"))

    atomic_write(paths["scenes"], write_json(sidecar), overwrite=overwrite)
    atomic_write(paths["features"], lambda f: pickle.dump(features, f, protocol=4),
                 overwrite=overwrite)  # fmt: skip
    atomic_write(paths["captions"], write_json(captions), overwrite=overwrite)
    return {
        **paths,
        "n_images": n_images,
        "n_captions": n_captions,
        "n_without_descriptor": n_images - len(features),
        "seed": seed,
    }
