"""The COCO organizer: captions, images, URLs and ResNet-18 descriptors, aligned as arrays.

Built from the course's two files, read and checked by `capstone.data.coco_files`. Images
without a descriptor are dropped with their captions (82,783 - 82,612 = 171 in the real
files), and counted. Inside, images are numbered 0..n_images-1 in order of id, and captions are
grouped by image, so that "the captions of image i" is a slice and every lookup is an array
operation. The course's id-based questions (captions of an image id, image of a caption id, ...)
are answered by the methods.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from capstone.common.checks import UnknownKey
from capstone.common.memory import release_freed_memory
from capstone.data.coco_files import field_error, load_captions, load_descriptors

__all__ = ["CocoData"]


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
        """Read the captions JSON and the descriptor pickle, keeping images that have both.

        The descriptors are read first and the heap they were unpickled into handed back
        (`release_freed_memory`) before the JSON is parsed, and again after (`_packed`): at
        COCO scale a fresh process then peaks at ~565 MiB of RSS (was ~775) and holds ~315
        (was ~600), the interpreter's ~60 included.
        """
        desc_ids, descriptors = load_descriptors(features_path)
        release_freed_memory()
        cols = load_captions(captions_path)
        if not cols["caption_id"]:
            raise ValueError(f"{captions_path}: its 'annotations' list is empty: no captions")
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
            raise field_error(
                Path(captions_path),
                f"annotations[{i}].image_id",
                f"{cap_image_ids[i]} is not the id of any entry of 'images'",
            )

        keep_image = np.flatnonzero(has_descriptor)
        new_index = np.full(len(image_ids), -1, dtype=np.int64)
        new_index[keep_image] = np.arange(len(keep_image))
        caption_image = new_index[pos]
        keep_caption = np.flatnonzero(caption_image >= 0)
        if not len(keep_caption):
            raise ValueError(
                f"no caption has a descriptor: the captions in {captions_path} are of images "
                f"{_few(np.unique(cap_image_ids))} and the descriptors in {features_path} of "
                f"images {_few(desc_ids)} (files of different datasets?)"
            )
        # Group captions by image, keeping the file's order within an image.
        keep_caption = keep_caption[np.argsort(caption_image[keep_caption], kind="stable")]
        caption_image = caption_image[keep_caption]
        counts = np.bincount(caption_image, minlength=len(keep_image))

        desc_rows = np.searchsorted(desc_ids, image_ids[keep_image])
        if len(desc_rows) != len(desc_ids):  # else every row, in order: no copy of 170 MB
            descriptors = descriptors[desc_rows]
        caption_ids = np.asarray(cols["caption_id"], dtype=np.int64)[keep_caption]
        kept_urls = _packed(urls[i] for i in keep_image)
        kept_captions = _packed(cols["caption"][i] for i in keep_caption)
        # The strings the parse made lie scattered among the ~300 MB of dicts and lists it
        # freed, keeping most of that memory in use: packed, freed and made again, they lie
        # together (~150 MB less at COCO scale).
        del cols, urls
        release_freed_memory()
        data = cls(
            image_ids=image_ids[keep_image],
            urls=_unpacked(*kept_urls),
            descriptors=descriptors,
            caption_ids=caption_ids,
            captions=_unpacked(*kept_captions),
            caption_image=caption_image,
            caption_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            n_dropped_images=int(len(image_ids) - len(keep_image)),
            n_dropped_captions=int(len(cap_image_ids) - len(keep_caption)),
        )
        del kept_urls, kept_captions
        release_freed_memory()
        return data

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
            h.update(np.ascontiguousarray(a))  # its buffer: .tobytes() copied 170 MB at COCO scale
        return h.hexdigest()

    @cached_property
    def _caption_order(self) -> np.ndarray:
        return np.argsort(self.caption_ids)

    def image_index(self, image_ids) -> np.ndarray:
        """Indices of ``image_ids`` (int or array); `UnknownKey` names an unknown id."""
        return _index_of(self.image_ids, None, image_ids, "image id")  # rows: the positions

    def caption_index(self, caption_ids) -> np.ndarray:
        """Indices of ``caption_ids`` (int or array); `UnknownKey` names an unknown id."""
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


def _packed(strings) -> tuple[str, list[int]]:
    """The strings joined into one, and where each ends in it (`_unpacked` splits them)."""
    strings = list(strings)
    return "".join(strings), np.cumsum([len(s) for s in strings], dtype=np.int64).tolist()


def _unpacked(text: str, ends: list[int]) -> list[str]:
    """The strings that `_packed` joined, as new objects: ``text[start:end]`` each."""
    # the starts are 0 and every end but the last: zip stops at the last end
    return [text[start:end] for start, end in zip([0, *ends], ends, strict=False)]


def _few(ids: np.ndarray, n: int = 3) -> str:
    """The first ``n`` ids, "1, 2, 3, ..." (sorted ids: the same few every time)."""
    return ", ".join(map(str, ids[:n].tolist())) + (", ..." if len(ids) > n else "")


def _index_of(sorted_ids: np.ndarray, rows: np.ndarray | None, wanted, what: str) -> np.ndarray:
    wanted = np.asarray(wanted)
    if wanted.dtype.kind not in "iu":
        raise TypeError(f"{what}s must be integers, got {wanted.dtype} ({wanted!r})")
    pos = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1)
    found = sorted_ids[pos] == wanted
    if not np.all(found):
        missing = wanted[~found] if wanted.ndim else wanted
        raise UnknownKey(f"unknown {what} {np.ravel(missing)[0]}")
    return pos if rows is None else rows[pos]
