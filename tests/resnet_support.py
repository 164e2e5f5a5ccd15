"""ResNet-18 test helpers: torchvision's state-dict shapes written out independently of
`capstone.photos.resnet`, seeded random weights in that layout and their fingerprint, and a
hand-written .safetensors writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def torchvision_shapes() -> dict[str, tuple[int, ...]]:
    """resnet18's state-dict shapes, written out independently of the module under test."""
    shapes = {"conv1.weight": (64, 3, 7, 7)}
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

    def add_bn(name, c):
        shapes.update({f"{name}.{f}": () if f == "num_batches_tracked" else (c,) for f in bn})

    add_bn("bn1", 64)
    widths = [64, 64, 128, 256, 512]
    for layer in range(1, 5):
        c_in, c = widths[layer - 1], widths[layer]
        for block in range(2):
            name = f"layer{layer}.{block}"
            shapes[f"{name}.conv1.weight"] = (c, c_in if block == 0 else c, 3, 3)
            add_bn(f"{name}.bn1", c)
            shapes[f"{name}.conv2.weight"] = (c, c, 3, 3)
            add_bn(f"{name}.bn2", c)
            if block == 0 and layer > 1:
                shapes[f"{name}.downsample.0.weight"] = (c, c_in, 1, 1)
                add_bn(f"{name}.downsample.1", c)
    shapes.update({"fc.weight": (1000, 512), "fc.bias": (1000,)})
    return shapes


def random_state(seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights in torchvision's layout, scaled (He) so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in torchvision_shapes().items():
        if key.endswith("num_batches_tracked"):
            value = np.array(7, dtype=np.int64)
        elif key.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif len(shape) == 1 and key.endswith(".weight"):  # batch-norm gamma
            value = rng.uniform(0.3, 0.8, shape)
        elif len(shape) == 1:  # biases and running means
            value = rng.normal(0, 0.2, shape)
        else:
            value = rng.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape)
        state[key] = value.astype(np.float32) if value.dtype == np.float64 else value
    return state


def state_fingerprint(state: dict[str, np.ndarray]) -> np.ndarray:
    """``sum(|w|)`` of each weight, keys sorted, shape-(len(state),) float64: whether a seed still
    draws the weights a fixture was made with (NumPy does not promise the same stream forever)."""
    return np.array([np.abs(state[k]).sum(dtype=np.float64) for k in sorted(state)])


SAFETENSORS_CODES = {"float16": "F16", "float32": "F32", "float64": "F64", "int64": "I64"}


def write_safetensors(
    path: Path, arrays: dict[str, np.ndarray], codes: dict[str, str] | None = None
) -> Path:
    """Write ``arrays`` as a .safetensors file; ``codes`` (name -> dtype code, e.g. ``"F32"``)
    default to each array's own dtype (`SAFETENSORS_CODES`)."""
    if codes is None:
        codes = {name: SAFETENSORS_CODES[array.dtype.name] for name, array in arrays.items()}
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, array in arrays.items():
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": codes[name],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + b"".join(chunks))
    return path
