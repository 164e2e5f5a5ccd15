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
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from capstone.common.checks import UnknownKey
from capstone.common.memory import release_freed_memory
from capstone.common.unpickle import RestrictedUnpickler, UnsafePickle

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


# -- the descriptor pickle, read with a restricted unpickler -------------------------------------

# NumPy's own rebuilding functions, found through an array rather than by module path: NumPy 2
# keeps them in numpy._core, NumPy 1.x in numpy.core (pickles name either).
_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # _reconstruct(ndarray, shape, dtype), protocols 0-4
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # _frombuffer(buf, dtype, shape, order), protocol 5
_SCALAR = np.int64(0).__reduce__()[0]  # scalar(dtype, bytes): a key pickled as a numpy integer


class _ArrayClass:
    """Stands in for ``numpy.ndarray``: a token `_reconstruct` accepts, not a callable (a pickle
    calling ``numpy.ndarray(shape)`` directly could allocate any amount of memory)."""


def _dtype(name, align=False, copy=False) -> np.dtype:
    """``numpy.dtype`` for the numeric types only: an object dtype would let a pickle put any
    of its objects inside an array."""
    if not isinstance(name, str) or np.dtype(name).kind not in "fiu":
        raise ValueError(f"an array of dtype {name!r}: descriptors are float arrays")
    return np.dtype(name, align, copy)


def _reconstruct(cls, shape, dtype) -> np.ndarray:
    """NumPy's ``_reconstruct`` for a plain array, allocating nothing: the real shape and data
    come next (``BUILD``), and NumPy checks that the data fill that shape exactly."""
    if not isinstance(cls, _ArrayClass):
        raise ValueError(f"_reconstruct of {cls!r}, not of numpy.ndarray")
    return _RECONSTRUCT(np.ndarray, (0,), dtype)


def _frombuffer(buf, dtype, shape, order, *axis_order) -> np.ndarray:
    if not isinstance(buf, bytes | bytearray) or not isinstance(dtype, np.dtype):
        raise ValueError("a protocol-5 array without its data in the file")
    return _FROMBUFFER(buf, dtype, shape, order, *axis_order)


def _scalar(dtype, data):
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iu" or not isinstance(data, bytes):
        raise ValueError(f"a numpy scalar of dtype {dtype!r}: only integer ids are expected")
    return _SCALAR(dtype, data)


def _latin1(text, encoding):
    """``_codecs.encode(text, "latin1")``: how protocols 0-2 store bytes (an array's data)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError(f"_codecs.encode with {encoding!r}: only latin1 bytes are expected")
    return text.encode("latin1")


def _descriptor_globals() -> dict[tuple[str, str], object]:
    """What pickling ``{int: numpy float array}`` emits, protocols 0-5, NumPy 1.x and 2."""
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): _ArrayClass(),
        ("numpy", "dtype"): _dtype,
        ("_codecs", "encode"): _latin1,
    }
    for core in ("numpy._core", "numpy.core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = _scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = _frombuffer
    return allowed


def _unpickle_descriptors(path: Path) -> object:
    """The object in a descriptor pickle, unpickled with only NumPy's array globals."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, _descriptor_globals(), "a descriptor file").load()
    except UnsafePickle as e:
        raise UnsafePickle(f"{path}: {e}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
        TypeError,
        ValueError,
        MemoryError,
        RecursionError,
    ) as e:
        # a malformed pickle fails in many ways; each means the same thing here
        raise ValueError(f"{path}: not a readable pickle ({e})") from e


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_descriptors(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``resnet18_features.pkl`` file.

    The pickle is read by `capstone.common.unpickle.RestrictedUnpickler`: only the globals
    NumPy needs to rebuild a numeric array are resolved (``_reconstruct``, ``_frombuffer``,
    ``ndarray``, ``dtype``, ``scalar``, under ``numpy._core`` or ``numpy.core``, and
    ``_codecs.encode`` for latin1 bytes), so a hostile file cannot run code.

    Returns
    -------
    image_ids : numpy.ndarray, shape (M,)
        int64, sorted.
    descriptors : numpy.ndarray, shape (M, D)
        float32, row i is the descriptor of ``image_ids[i]`` (D = 512 for ResNet-18).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    capstone.common.unpickle.UnsafePickle
        If the pickle asks for any other global (the message names it and the file).
    ValueError
        If it is not a dict of integer ids to float arrays of one shape (1, D) or (D,) (the
        message names the image), a descriptor holds NaN or infinity, or every descriptor is
        all zero. Images whose descriptor alone is all zero are only warned about: they match
        no query, but the others are fine.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"descriptor file {path} not found")
    table = _unpickle_descriptors(path)
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{path}: expected a non-empty dict of image id -> (1, 512) array")
    bad_key = next(
        (k for k in table if not isinstance(k, int | np.integer) or isinstance(k, bool)), None
    )
    if bad_key is not None:
        raise ValueError(f"{path}: key {bad_key!r} is not an integer image id")
    for image_id, value in table.items():
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            kind = f"{value.dtype} array" if isinstance(value, np.ndarray) else type(value).__name__
            raise ValueError(
                f"{path}: the descriptor of image {image_id} is a {kind} ({_shown(value)}), "
                "not a float array of shape (1, 512)"
            )
    first_id, first = next(iter(table.items()))
    if first.size == 0 or first.shape not in ((first.size,), (1, first.size)):
        raise ValueError(
            f"{path}: the descriptor of image {first_id} has shape {first.shape}, expected "
            "(1, D) or (D,)"
        )
    other = next((k for k, v in table.items() if v.shape != first.shape), None)
    if other is not None:
        raise ValueError(
            f"{path}: descriptors have differing shapes: image {other} has "
            f"{table[other].shape}, image {first_id} {first.shape}"
        )
    keys = list(table)
    ids = np.fromiter(keys, dtype=np.int64, count=len(keys))
    order = np.argsort(ids)
    ids = ids[order]
    # Filled row by row in id order, each small array dropped once copied: one (M, D) float32
    # matrix beside the table, rather than a stacked copy and a sorted copy of it as well.
    descriptors = np.empty((len(keys), first.size), dtype=np.float32)
    del first
    for row, i in enumerate(order.tolist()):
        descriptors[row] = table.pop(keys[i]).reshape(-1)
    del table, keys
    bad = ~np.isfinite(descriptors).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{path}: the descriptor of image {ids[bad][0]} holds NaN or infinity "
            f"({int(bad.sum())} image(s) do); recompute them, or remove those images"
        )
    zero = ~descriptors.any(axis=1)
    if zero.all():
        raise ValueError(
            f"{path}: every descriptor is all zero: no image can be told from another "
            "(these are not ResNet-18 features)"
        )
    if zero.any():
        warnings.warn(
            f"{path}: {int(zero.sum()):,} of {len(ids):,} images have an all-zero descriptor "
            f"(image {ids[zero][0]} first): no query can find them",
            stacklevel=2,
        )
    return ids, descriptors


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
