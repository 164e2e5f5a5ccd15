"""ResNet-18 weight files read without torch: PyTorch's ``.pth`` (zip) and ``.safetensors``.

`load_state_dict` reads torchvision's ``resnet18-f37072fd.pth`` (`WEIGHTS_FILE`), or a
``.safetensors`` file with the same keys, into NumPy arrays. A ``.pth`` holds a pickle, read by
a restricted unpickler (nothing in the file can run code), and tensors that would make every
photo's descriptor the same are refused. Finding or downloading the file is
`capstone.photos.weights`.
"""

from __future__ import annotations

import collections
import json
import math
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from capstone.common.unpickle import RestrictedUnpickler

__all__ = ["WEIGHTS_FILE", "UnsafeWeights", "WeightsError", "load_state_dict"]

#: torchvision's IMAGENET1K_V1 weights, as torch hub names the file
WEIGHTS_FILE = "resnet18-f37072fd.pth"


class WeightsError(ValueError):
    """A weights file that is corrupt, truncated or not in a format `load_state_dict` reads."""


class UnsafeWeights(WeightsError):
    """A ``.pth`` file whose pickle asks for something a state dict never needs."""


# -- PyTorch's zip format, read with a restricted unpickler -------------------------------------


def _is_count(n) -> bool:
    """Whether ``n`` is a non-negative int (not a bool)."""
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


class _StorageType:
    """Stands in for ``torch.FloatStorage`` and its kin: only the element type matters."""

    def __init__(self, name: str, dtype: str):
        self.name = name
        self.dtype = np.dtype(dtype)


_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "DoubleStorage": "<f8",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
}


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2``: a tensor as a strided view of a storage, copied.

    Element ``index`` of the tensor is ``storage[storage_offset + sum(index[d] * stride[d])]``;
    every bound is checked first, since ``as_strided`` would read any memory it is pointed at.
    """
    if (
        not isinstance(storage, np.ndarray)
        or storage.ndim != 1
        or not isinstance(size, tuple)
        or not isinstance(stride, tuple)
        or len(size) != len(stride)
        or not all(map(_is_count, (storage_offset, *size, *stride)))
    ):
        raise WeightsError(
            f"malformed tensor record (offset {storage_offset!r}, size {size!r}, stride {stride!r})"
        )
    if 0 in size:
        return np.empty(size, dtype=storage.dtype.newbyteorder("="))
    if math.prod(size) > storage.size:  # a stride of 0 would make a small storage huge
        raise WeightsError(
            f"a tensor of size {size} has more elements than its storage of {storage.size}: "
            "the file is corrupt"
        )
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= storage.size:
        raise WeightsError(
            f"a tensor of size {size} and stride {stride} at offset {storage_offset} runs past "
            f"the end of its storage of {storage.size} elements: the file is corrupt"
        )
    view = as_strided(
        storage[storage_offset:],
        shape=size,
        strides=[s * storage.itemsize for s in stride],
        writeable=False,
    )
    return np.array(view, dtype=storage.dtype.newbyteorder("="))


def _rebuild_from_storage(storage, *args) -> np.ndarray:
    """`_rebuild_tensor_v2` for storages that `_StateDictUnpickler.persistent_load` read (never
    a tensor the pickle rebuilt before: its rows are not the flat storage the bounds assume)."""
    if not isinstance(storage, _Storage):
        raise WeightsError("a tensor is rebuilt from something that is not a storage")
    return _rebuild_tensor_v2(storage.array, *args)


class _Storage:
    """A storage read from the archive: the only thing a tensor may be rebuilt from."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only globals a state dict needs, as fresh stand-ins for each load: a pickle can set
    attributes on what it unpickles (BUILD) and must not reach the next load through them."""
    return {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_from_storage,
        # torch._utils._rebuild_parameter(data, requires_grad, backward_hooks): just the data
        ("torch._utils", "_rebuild_parameter"): lambda data, *_: data,
        **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
    }


class _StateDictUnpickler(RestrictedUnpickler):
    """Unpickles a torch state dict and refuses every other global (`RestrictedUnpickler`).

    Only an ordered dict, the tensor-rebuilding functions and the storage types are resolved,
    each to a harmless stand-in defined here; torch itself is never imported.
    """

    unsafe = UnsafeWeights

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, endian: str):
        super().__init__(file, _allowed_globals(), "a ResNet-18 state dict")
        self.archive = archive
        self.prefix = prefix
        self.endian = endian
        self.storages: dict[str, _Storage] = {}

    def persistent_load(self, pid):
        """``('storage', storage_type, key, location, numel)`` -> the storage ``data/<key>``."""
        if (
            not isinstance(pid, tuple)
            or len(pid) != 5
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
            or not isinstance(pid[2], str)
            or not isinstance(pid[4], int)
        ):
            raise WeightsError(f"malformed storage record {pid!r}")
        _, storage_type, key, _, numel = pid
        if key not in self.storages:
            member = f"{self.prefix}data/{key}"
            dtype = storage_type.dtype.newbyteorder(self.endian)
            try:
                stored = self.archive.getinfo(member).file_size
            except KeyError:
                raise WeightsError(f"storage {member} is missing from the archive") from None
            # checked before reading: a zip member could inflate to any size
            if stored != numel * dtype.itemsize or stored > _MAX_STORAGE_BYTES:
                raise WeightsError(
                    f"storage {member} holds {stored} bytes, expected {numel} x "
                    f"{dtype.itemsize} ({storage_type.name}): the file is corrupt"
                )
            raw = self.archive.read(member)
            if len(raw) != numel * dtype.itemsize:
                raise WeightsError(
                    f"storage {member} holds {len(raw)} bytes, expected {numel} x "
                    f"{dtype.itemsize} ({storage_type.name}): the file is corrupt"
                )
            self.storages[key] = _Storage(np.frombuffer(raw, dtype=dtype))
        return self.storages[key]


def _load_torch_zip(path: Path) -> dict[str, np.ndarray]:
    """Read PyTorch's zip format: ``<name>/data.pkl`` plus one raw ``<name>/data/<key>`` per
    storage (and optionally ``<name>/byteorder``, ``"little"`` when absent)."""
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise WeightsError("not a PyTorch checkpoint: expected one <name>/data.pkl inside")
        prefix = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())
        byteorder = archive.read(f"{prefix}byteorder") if f"{prefix}byteorder" in names else b""
        endian = ">" if byteorder.strip() == b"big" else "<"
        with archive.open(pickles[0]) as file:
            state = _StateDictUnpickler(file, archive, prefix, endian).load()
    if not isinstance(state, Mapping):
        raise WeightsError(f"the checkpoint holds a {type(state).__name__}, not a state dict")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise WeightsError(f"entry {key!r} of the state dict is not a named tensor")
    return dict(state)


# -- safetensors -------------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}
_MAX_STORAGE_BYTES = 1 << 30  # ResNet-18's largest weight is 9.4 MB


def _safetensors_array(name: str, entry, body: memoryview) -> np.ndarray:
    """One tensor of a safetensors body, its header ``entry`` checked field by field."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise WeightsError(f"header entry {name!r} lacks dtype, shape or data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in _SAFETENSORS_DTYPES:
        raise WeightsError(
            f"tensor {name!r} has dtype {dtype!r}; supported: {', '.join(_SAFETENSORS_DTYPES)}"
        )
    if not (isinstance(shape, list) and all(map(_is_count, shape))):
        raise WeightsError(f"tensor {name!r} has a malformed shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise WeightsError(f"tensor {name!r} has malformed data_offsets {offsets!r}")
    begin, end = offsets
    itemsize = np.dtype(_SAFETENSORS_DTYPES[dtype]).itemsize
    if not begin <= end <= len(body):
        raise WeightsError(
            f"tensor {name!r} lies at bytes {begin}..{end}, past the end of the data "
            f"({len(body)} bytes): the file is truncated"
        )
    if end - begin != math.prod(shape) * itemsize:
        raise WeightsError(
            f"tensor {name!r} of shape {shape} and dtype {dtype} needs "
            f"{math.prod(shape) * itemsize} bytes, its offsets span {end - begin}"
        )
    data = np.frombuffer(body[begin:end], dtype=_SAFETENSORS_DTYPES[dtype])
    return data.astype(data.dtype.newbyteorder("=")).reshape(shape)


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read a safetensors file: an 8-byte little-endian header length n, n bytes of JSON
    (``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``),
    then the raw little-endian data, offsets counted from its start."""
    raw = path.read_bytes()
    if len(raw) < 8:
        raise WeightsError(f"{len(raw)} bytes: too short for a safetensors file")
    size = int.from_bytes(raw[:8], "little")
    if size > len(raw) - 8:
        raise WeightsError(
            f"its header claims {size} bytes but the file has {len(raw) - 8} after the length: "
            "truncated, or not a safetensors file"
        )
    try:
        header = json.loads(raw[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise WeightsError(f"the safetensors header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise WeightsError("the safetensors header is not a JSON object")
    body = memoryview(raw)[8 + size :]
    return {
        name: _safetensors_array(name, entry, body)
        for name, entry in header.items()
        if name != "__metadata__"
    }


# -- weights that describe nothing --------------------------------------------------------------

_BLOCK_CONV1 = re.compile(r"(layer\d+\.\d+)\.conv1\.weight")


def _all_zero(state: Mapping[str, np.ndarray], key: str) -> bool:
    value = state.get(key)
    return value is not None and value.dtype.kind == "f" and not value.any()


def _constant_output_cause(state: Mapping[str, np.ndarray]) -> str | None:
    """The all-zero tensor(s) that make ResNet-18's descriptor the same for every photo, or None.

    The photo reaches the descriptor through the stem (``conv1``, ``bn1``), then each basic
    block, ``relu(main(x) + shortcut(x))``. A zero convolution or batch-norm scale (gamma)
    turns its path into a constant, so the photo is cut off if the stem is, or if both paths
    of a block are: its main path (``conv1``, ``bn1``, ``conv2``, ``bn2``) and a ``downsample``
    shortcut (an identity shortcut always carries the photo). Torchvision's
    ``zero_init_residual`` zeroes ``bn2`` only, and is rightly accepted.
    """
    dead = next((k for k in ("conv1.weight", "bn1.weight") if _all_zero(state, k)), None)
    if dead:
        return dead
    for block in (m[1] for m in map(_BLOCK_CONV1.fullmatch, state) if m):
        main = ("conv1.weight", "bn1.weight", "conv2.weight", "bn2.weight")
        shortcut = ("downsample.0.weight", "downsample.1.weight")
        dead_main = next((f"{block}.{k}" for k in main if _all_zero(state, f"{block}.{k}")), None)
        dead_short = next(
            (f"{block}.{k}" for k in shortcut if _all_zero(state, f"{block}.{k}")), None
        )
        if dead_main and dead_short:
            return f"{dead_main} and {dead_short}"
    return None


def _checked(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``state``, unless a tensor holds NaN/infinity or zeros cut every photo off (raise)."""
    for key, value in state.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise WeightsError(
                f"tensor {key!r} holds NaN or infinity: the file is corrupt or its training "
                "diverged"
            )
    cause = _constant_output_cause(state)
    if cause:
        verb = "are" if " and " in cause else "is"
        raise WeightsError(
            f"{cause} {verb} all zero: every photo would get the same descriptor (these are not "
            "trained ResNet-18 weights)"
        )
    return state


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a state dict from a PyTorch ``.pth`` (zip format) or a ``.safetensors`` file.

    A ``.pth`` is read without torch: its ``data.pkl`` is unpickled by a restricted unpickler
    that resolves only ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
    ``torch._utils._rebuild_parameter`` and the storage types ``torch.FloatStorage``,
    ``HalfStorage``, ``DoubleStorage``, ``LongStorage`` and ``IntStorage``, each mapped to a
    stand-in. **This is a security boundary**: unpickling can run arbitrary code, so any other
    global (``os.system``, ``builtins.eval``, ...) is refused before it is called.

    A ``.safetensors`` file is parsed here too (dtypes F32, F16 and I64).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    dict[str, numpy.ndarray]
        Every tensor by key, in file order, in its stored dtype (native byte order).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    UnsafeWeights
        If the pickle asks for a global outside the list above (the message names it).
    WeightsError
        If the file is truncated, corrupt, a legacy (pre-zip) torch file, or neither format;
        if a tensor holds NaN or infinity; or if all-zero tensors would give every photo the
        same descriptor (`_constant_output_cause`: the message names the tensor).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        with path.open("rb") as file:
            magic = file.read(4)
        if magic == b"PK\x03\x04":  # a zip: PyTorch's format since 1.6
            return _checked(_load_torch_zip(path))
        if path.suffix.lower() in (".pth", ".pt"):
            raise WeightsError(
                "not a zip-format PyTorch file (the legacy torch.save format is not read); "
                "use torchvision's resnet18-f37072fd.pth or a .safetensors file"
            )
        if path.suffix.lower() != ".safetensors":
            raise WeightsError(
                "neither a PyTorch .pth (zip) nor a .safetensors file: give torchvision's "
                f"{WEIGHTS_FILE} or a .safetensors file"
            )
        return _checked(_load_safetensors(path))
    except UnsafeWeights as e:
        raise UnsafeWeights(f"{path}: {e}") from None
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
    except (
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        RecursionError,
    ) as e:
        # a malformed pickle fails in many ways; each means the same thing here
        raise WeightsError(f"{path}: corrupt or truncated weights file ({e})") from e
