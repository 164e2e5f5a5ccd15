"""A tiny COCO dataset in the real file formats, for the tests of `capstone.data.coco` and
`capstone.data.coco_files`: the entries, the writers, and the fixture's ids."""

from __future__ import annotations

import json
import pickle
import random
import re
from pathlib import Path

import numpy as np

D = 512


# Ids deliberately out of order; 384029 has no descriptor; 5 to 7 captions each.
IMAGE_IDS = [57870, 9, 384029, 222016, 1000]
N_CAPTIONS = [5, 6, 5, 7, 5]
MISSING = (384029,)


def coco_url(image_id: int) -> str:
    return f"http://images.cocodataset.org/train2014/COCO_train2014_{image_id:012d}.jpg"


def image_entry(image_id: int) -> dict:
    """One entry of ``images`` with every field the real file has."""
    return {
        "license": 5,
        "file_name": f"COCO_train2014_{image_id:012d}.jpg",
        "coco_url": coco_url(image_id),
        "height": 480,
        "width": 640,
        "date_captured": "2013-11-14 16:28:13",
        "flickr_url": f"http://farm4.staticflickr.com/{image_id}.jpg",
        "id": image_id,
    }


def captions_doc(images: list[dict], annotations: list[dict]) -> dict:
    return {
        "info": {"description": "tiny COCO for tests", "year": 2014},
        "images": images,
        "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 5}],
        "annotations": annotations,
    }


def write_coco(folder: Path, doc, features, *, captions_bytes: bytes | None = None):
    """Write ``captions_train2014.json`` and ``resnet18_features.pkl`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    captions_path = folder / "captions_train2014.json"
    features_path = folder / "resnet18_features.pkl"
    if captions_bytes is not None:
        captions_path.write_bytes(captions_bytes)
    else:
        captions_path.write_text(json.dumps(doc))
    with open(features_path, "wb") as f:
        pickle.dump(features, f)
    return captions_path, features_path


def make_dataset(
    image_ids, n_captions, missing=(), *, seed=0, extra_descriptor_ids=(), first_caption_id=1
):
    """A captions document and a descriptor table: annotations shuffled, ``missing`` images
    without a descriptor, and descriptors for ``extra_descriptor_ids`` not in the captions."""
    rng = np.random.default_rng(seed)
    images = [image_entry(i) for i in image_ids]
    annotations = []
    cid = first_caption_id
    for image_id, n in zip(image_ids, n_captions, strict=True):
        for j in range(n):
            annotations.append(
                {"image_id": image_id, "id": cid, "caption": f"Caption {j} of image {image_id}."}
            )
            cid += 7  # ids are not consecutive in the real file either
    random.Random(seed).shuffle(annotations)
    features = {
        int(i): rng.normal(size=(1, D)).astype(np.float32)
        for i in [*image_ids, *extra_descriptor_ids]
        if i not in missing
    }
    return captions_doc(images, annotations), features


def small_doc():
    doc, features = make_dataset([1, 2, 3], [5, 5, 5])
    return doc, features


def named(path: Path, pattern: str) -> str:
    return re.escape(str(path)) + pattern
