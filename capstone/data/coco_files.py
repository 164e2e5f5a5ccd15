"""The course's two COCO files, read and checked: the captions JSON and the descriptor pickle.

- ``captions_train2014.json``: ``{"images": [{"id", "coco_url", ...}], "annotations":
  [{"id", "image_id", "caption"}], ...}``, read into plain columns (`load_captions`);
- ``resnet18_features.pkl``: a pickled dict, image id -> float32 array of shape (1, 512), read
  with a restricted unpickler into sorted ids and one (M, D) matrix (`load_descriptors`).

Every problem is an error naming the file and the entry or image; `capstone.data.coco.CocoData`
aligns what these return.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np

from capstone.common.unpickle import RestrictedUnpickler, UnsafePickle

__all__ = ["field_error", "load_captions", "load_descriptors"]


def field_error(path: Path, where: str, problem: str) -> ValueError:
    """The error for a bad entry of a captions file: ``"{path}: {where} {problem}"``, e.g.
    ``"captions_train2014.json: annotations[4].image_id is '1', expected int"``; also raised by
    `capstone.data.coco.CocoData.load` for an annotation of no listed image."""
    return ValueError(f"{path}: {where} {problem}")


def _column(path: Path, items: list, list_name: str, field: str, kind: type) -> list:
    """``[item[field] for item in items]``, with an error naming the first bad entry."""
    try:
        values = [item[field] for item in items]
    except (KeyError, TypeError):
        i = next(i for i, it in enumerate(items) if not isinstance(it, dict) or field not in it)
        raise field_error(path, f"{list_name}[{i}]", f"has no {field!r} field") from None
    bad = next(
        (i for i, v in enumerate(values) if not isinstance(v, kind) or isinstance(v, bool)), None
    )
    if bad is not None:
        raise field_error(
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
