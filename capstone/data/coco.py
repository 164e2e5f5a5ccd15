"""The COCO organizer: captions, images, URLs and ResNet-18 descriptors, aligned as arrays.

Reads the course's two files:

- ``captions_train2014.json``: ``{"images": [{"id", "coco_url", ...}], "annotations":
  [{"id", "image_id", "caption"}], ...}``;
- ``resnet18_features.pkl``: a pickled dict, image id -> float32 array of shape (1, 512).

Images without a descriptor are dropped with their captions (82,783 - 82,612 = 171 in the real
files), and counted. Inside, images are numbered 0..n_images-1 in order of id, and captions are
grouped by image, so that "the captions of image i" is a slice and every lookup is an array
operation. The course's id-based questions (captions of an image id, image of a caption id, ...)
are answered by the methods.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

__all__ = ["CocoData", "load_captions", "load_descriptors"]


def _field_error(path: Path, where: str, problem: str) -> ValueError:
    return ValueError(f"{path}: {where} {problem}")


def _column(path: Path, items: list, list_name: str, field: str, kind: type) -> list:
    """``[item[field] for item in items]``, with an error naming the first bad entry."""
    try:
        values = [item[field] for item in items]
    except (KeyError, TypeError):
        i = next(i for i, it in enumerate(items) if not isinstance(it, dict) or field not in it)
        raise _field_error(path, f"{list_name}[{i}]", f"has no {field!r} field") from None
    bad = next(
        (i for i, v in enumerate(values) if not isinstance(v, kind) or isinstance(v, bool)), None
    )
    if bad is not None:
        raise _field_error(
            path, f"{list_name}[{bad}].{field}", f"is {values[bad]!r}, expected {kind.__name__}"
        )
    return values


def load_captions(path: str | os.PathLike) -> dict[str, list]:
    """Read a ``captions_train2014.json`` file into plain columns.

    Returns
    -------
    dict
        ``image_id``, ``coco_url`` (one per image), ``caption_id``, ``caption_image_id``,
        ``caption`` (one per annotation), all lists.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file, invalid JSON, or a missing/ill-typed field; the message names the file
        and the entry.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"captions file {path} not found")
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(doc.get(key), list):
            raise ValueError(f"{path}: has no {key!r} list")
    images, annotations = doc["images"], doc["annotations"]
    return {
        "image_id": _column(path, images, "images", "id", int),
        "coco_url": _column(path, images, "images", "coco_url", str),
        "caption_id": _column(path, annotations, "annotations", "id", int),
        "caption_image_id": _column(path, annotations, "annotations", "image_id", int),
        "caption": _column(path, annotations, "annotations", "caption", str),
    }


def load_descriptors(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``resnet18_features.pkl`` file.

    The file is a pickle: load only files you trust (the course's own).

    Returns
    -------
    image_ids : numpy.ndarray, shape (M,)
        int64, sorted.
    descriptors : numpy.ndarray, shape (M, D)
        float32, row i is the descriptor of ``image_ids[i]`` (D = 512 for ResNet-18).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"descriptor file {path} not found")
    try:
        with open(path, "rb") as f:
            table = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as e:
        raise ValueError(f"{path}: not a readable pickle ({e})") from e
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{path}: expected a non-empty dict of image id -> (1, 512) array")
    bad_key = next(
        (k for k in table if not isinstance(k, int | np.integer) or isinstance(k, bool)), None
    )
    if bad_key is not None:
        raise ValueError(f"{path}: key {bad_key!r} is not an integer image id")
    ids = np.fromiter(table.keys(), dtype=np.int64, count=len(table))
    order = np.argsort(ids)
    rows = list(table.values())
    shapes = {np.shape(r) for r in rows}
    if len(shapes) != 1 or len(next(iter(shapes))) not in (1, 2):
        raise ValueError(f"{path}: descriptors have differing or unexpected shapes {shapes}")
    descriptors = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
    bad = ~np.isfinite(descriptors).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{path}: the descriptor of image {ids[bad][0]} holds NaN or infinity "
            f"({int(bad.sum())} image(s) do); recompute them, or remove those images"
        )
    return ids[order], descriptors[order]


@dataclass(frozen=True)
class CocoData:
    """Captions and image descriptors of one dataset, aligned by integer index.

    Attributes
    ----------
    image_ids : numpy.ndarray, shape (n_images,)
        int64, sorted; image i has id ``image_ids[i]``.
    urls : list[str], length n_images
        ``coco_url`` of each image.
    descriptors : numpy.ndarray, shape (n_images, 512)
        float32 ResNet-18 descriptors.
    caption_ids : numpy.ndarray, shape (n_captions,)
        int64 annotation ids, grouped by image.
    captions : list[str], length n_captions
    caption_image : numpy.ndarray, shape (n_captions,)
        int64 index of each caption's image.
    caption_offsets : numpy.ndarray, shape (n_images + 1,)
        The captions of image i are ``caption_offsets[i]:caption_offsets[i + 1]``.
    n_dropped_images, n_dropped_captions : int
        Images in the captions file without a descriptor, and their captions.
    """

    image_ids: np.ndarray
    urls: list[str]
    descriptors: np.ndarray
    caption_ids: np.ndarray
    captions: list[str]
    caption_image: np.ndarray
    caption_offsets: np.ndarray
    n_dropped_images: int = 0
    n_dropped_captions: int = 0

    @classmethod
    def load(cls, captions_path: str | os.PathLike, features_path: str | os.PathLike) -> CocoData:
        """Read the captions JSON and the descriptor pickle, keeping images that have both."""
        cols = load_captions(captions_path)
        desc_ids, descriptors = load_descriptors(features_path)
        image_ids = np.asarray(cols["image_id"], dtype=np.int64)
        if len(np.unique(image_ids)) != len(image_ids):
            raise ValueError(f"{captions_path}: images[].id values are not unique")
        order = np.argsort(image_ids)
        image_ids, urls = image_ids[order], [cols["coco_url"][i] for i in order]

        has_descriptor = np.isin(image_ids, desc_ids)
        cap_image_ids = np.asarray(cols["caption_image_id"], dtype=np.int64)
        pos = np.searchsorted(image_ids, cap_image_ids)
        pos_ok = pos < len(image_ids)
        known = np.zeros(len(pos), bool)
        known[pos_ok] = image_ids[pos[pos_ok]] == cap_image_ids[pos_ok]
        if not known.all():
            i = int(np.flatnonzero(~known)[0])
            raise _field_error(
                Path(captions_path),
                f"annotations[{i}].image_id",
                f"{cap_image_ids[i]} is not the id of any entry of 'images'",
            )

        keep_image = np.flatnonzero(has_descriptor)
        new_index = np.full(len(image_ids), -1, dtype=np.int64)
        new_index[keep_image] = np.arange(len(keep_image))
        caption_image = new_index[pos]
        keep_caption = np.flatnonzero(caption_image >= 0)
        # Group captions by image, keeping the file's order within an image.
        keep_caption = keep_caption[np.argsort(caption_image[keep_caption], kind="stable")]
        caption_image = caption_image[keep_caption]
        counts = np.bincount(caption_image, minlength=len(keep_image))

        desc_rows = np.searchsorted(desc_ids, image_ids[keep_image])
        return cls(
            image_ids=image_ids[keep_image],
            urls=[urls[i] for i in keep_image],
            descriptors=descriptors[desc_rows],
            caption_ids=np.asarray(cols["caption_id"], dtype=np.int64)[keep_caption],
            captions=[cols["caption"][i] for i in keep_caption],
            caption_image=caption_image,
            caption_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            n_dropped_images=int(len(image_ids) - len(keep_image)),
            n_dropped_captions=int(len(cap_image_ids) - len(keep_caption)),
        )

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_captions(self) -> int:
        return len(self.captions)

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the ids and descriptors: tells whether two runs used the same data."""
        h = hashlib.blake2b(digest_size=8)
        for a in (self.image_ids, self.caption_ids, self.caption_image, self.descriptors):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    @cached_property
    def _caption_order(self) -> np.ndarray:
        return np.argsort(self.caption_ids)

    def image_index(self, image_ids) -> np.ndarray:
        """Indices of ``image_ids`` (int or array); a KeyError names an unknown id."""
        return _index_of(self.image_ids, None, image_ids, "image id")  # rows: the positions

    def caption_index(self, caption_ids) -> np.ndarray:
        """Indices of ``caption_ids`` (int or array); a KeyError names an unknown id."""
        order = self._caption_order
        return _index_of(self.caption_ids[order], order, caption_ids, "caption id")

    def captions_of(self, image_id: int) -> list[int]:
        """The caption ids of one image."""
        i = int(self.image_index(image_id))
        return self.caption_ids[self.caption_offsets[i] : self.caption_offsets[i + 1]].tolist()

    def image_of(self, caption_id: int) -> int:
        """The image id of one caption."""
        return int(self.image_ids[self.caption_image[self.caption_index(caption_id)]])

    def caption(self, caption_id: int) -> str:
        """The text of one caption."""
        return self.captions[int(self.caption_index(caption_id))]

    def url(self, image_id: int) -> str:
        """The ``coco_url`` of one image."""
        return self.urls[int(self.image_index(image_id))]

    def descriptor(self, image_id: int) -> np.ndarray:
        """The (512,) descriptor of one image."""
        return self.descriptors[self.image_index(image_id)]

    def caption_texts_of_image(self, index: int) -> list[str]:
        """The captions of the image with index ``index`` (not id)."""
        return self.captions[self.caption_offsets[index] : self.caption_offsets[index + 1]]


def _index_of(sorted_ids: np.ndarray, rows: np.ndarray | None, wanted, what: str) -> np.ndarray:
    wanted = np.asarray(wanted)
    if wanted.dtype.kind not in "iu":
        raise TypeError(f"{what}s must be integers, got {wanted.dtype} ({wanted!r})")
    pos = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1)
    found = sorted_ids[pos] == wanted
    if not np.all(found):
        missing = wanted[~found] if wanted.ndim else wanted
        raise KeyError(f"unknown {what} {np.ravel(missing)[0]}")
    return pos if rows is None else rows[pos]
