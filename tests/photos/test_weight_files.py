"""Tests of capstone.photos.weight_files: torch's zip format and safetensors read without torch,
the restricted unpickler, and weights that would describe every photo alike."""

from __future__ import annotations

import collections
import json
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from resnet_support import random_state, write_safetensors

from capstone.photos.resnet import ResNet18
from capstone.photos.weight_files import UnsafeWeights, WeightsError, load_state_dict

# -- writing a real PyTorch zip checkpoint without torch ----------------------------------------

STORAGE_NAMES = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
}


def _rebuild_tensor_v2(*args):
    """Stands in for torch._utils._rebuild_tensor_v2 while pickling (never called)."""


@pytest.fixture
def fake_torch(monkeypatch) -> types.SimpleNamespace:
    """Modules named ``torch`` and ``torch._utils`` holding stand-ins, so that pickle writes
    the same GLOBAL opcodes as ``torch.save`` (pickle checks a global can be imported back)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    _rebuild_tensor_v2.__module__ = "torch._utils"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return types.SimpleNamespace(torch=torch, rebuild=_rebuild_tensor_v2)


class Storage:
    """A flat storage: ``persistent_id`` turns it into torch's storage record."""

    def __init__(self, key: str, flat: np.ndarray):
        self.key, self.flat = key, flat


class Tensor:
    """Pickles as torch does: ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

    def __init__(self, rebuild, storage: Storage, offset: int, size: tuple, stride: tuple):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())
        self.rebuild = rebuild

    def __reduce__(self):
        return self.rebuild, self.args


class CheckpointPickler(pickle.Pickler):
    def __init__(self, file, torch):
        super().__init__(file, protocol=2)
        self.torch = torch

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            storage_type = getattr(self.torch, STORAGE_NAMES[obj.flat.dtype])
            return ("storage", storage_type, obj.key, "cpu", obj.flat.size)
        return None


def write_checkpoint(path: Path, state, storages: list[Storage], torch) -> Path:
    """A zip like torch.save's: archive/data.pkl, archive/data/<key>, version, byteorder."""
    pickled = pickle.io.BytesIO()
    CheckpointPickler(pickled, torch).dump(state)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickled.getvalue())
        archive.writestr("archive/byteorder", "little")
        for storage in storages:
            archive.writestr(
                f"archive/data/{storage.key}",
                storage.flat.astype("<" + storage.flat.dtype.str[1:]).tobytes(),
            )
        archive.writestr("archive/version", "3\n")
    return path


def tensors_state(fake_torch) -> tuple[collections.OrderedDict, list[Storage], dict]:
    """A state dict exercising every storage type, strides, offsets and shared storages."""
    rng = np.random.default_rng(0)
    shared = Storage("0", rng.normal(size=12).astype(np.float32))
    half = Storage("1", rng.normal(size=6).astype(np.float16))
    double = Storage("2", rng.normal(size=4))
    long = Storage("3", np.array([42], np.int64))
    ints = Storage("4", np.arange(5, dtype=np.int32))
    rebuild = fake_torch.rebuild
    state = collections.OrderedDict(
        [
            ("conv.weight", Tensor(rebuild, shared, 0, (2, 3, 2), (6, 2, 1))),
            ("conv.weight_t", Tensor(rebuild, shared, 0, (3, 2), (1, 3))),  # a transpose
            ("tail", Tensor(rebuild, shared, 8, (4,), (1,))),  # an offset into the same storage
            ("half", Tensor(rebuild, half, 0, (2, 3), (3, 1))),
            ("double", Tensor(rebuild, double, 1, (3,), (1,))),
            ("bn.num_batches_tracked", Tensor(rebuild, long, 0, (), ())),
            ("ints", Tensor(rebuild, ints, 0, (5,), (1,))),
            ("empty", Tensor(rebuild, ints, 0, (0, 3), (3, 1))),
        ]
    )
    state._metadata = collections.OrderedDict([("", {"version": 1})])  # as torch's state dicts
    expected = {
        "conv.weight": shared.flat.reshape(2, 3, 2),
        "conv.weight_t": shared.flat[:6].reshape(2, 3).T,
        "tail": shared.flat[8:],
        "half": half.flat.reshape(2, 3),
        "double": double.flat[1:],
        "bn.num_batches_tracked": np.array(42, np.int64),
        "ints": ints.flat,
        "empty": np.zeros((0, 3), np.int32),
    }
    return state, [shared, half, double, long, ints], expected


def test_reads_torch_zip_exactly(tmp_path, fake_torch):
    state, storages, expected = tensors_state(fake_torch)
    path = write_checkpoint(tmp_path / "w.pth", state, storages, fake_torch.torch)
    loaded = load_state_dict(path)
    assert list(loaded) == list(expected)
    for key, value in expected.items():
        assert loaded[key].dtype == value.dtype, key
        assert loaded[key].shape == value.shape, key
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)
    assert loaded["tail"].flags.writeable  # copies, not views of the file's bytes


class Evil:
    def __init__(self, call, argument):
        self.call, self.argument = call, argument

    def __reduce__(self):
        return self.call, (self.argument,)


@pytest.mark.parametrize(
    ("call", "command", "name"),
    [
        (os.system, "touch {marker}", f"{os.system.__module__}.system"),
        # protocol 2 writes builtins under its Python 2 name
        (eval, "__import__('pathlib').Path({marker!r}).touch()", "(builtins|__builtin__).eval"),
    ],
)
def test_malicious_pickle_is_refused_before_running(tmp_path, fake_torch, call, command, name):
    marker = tmp_path / "pwned"
    state = {"conv1.weight": Evil(call, command.format(marker=str(marker)))}
    path = write_checkpoint(tmp_path / "evil.pth", state, [], fake_torch.torch)
    with pytest.raises(UnsafeWeights, match=f"global {name}") as info:
        load_state_dict(path)
    assert "evil.pth" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert not marker.exists()


def test_other_torch_globals_are_refused(tmp_path, fake_torch):
    untyped = type("UntypedStorage", (), {"__module__": "torch"})
    fake_torch.torch.UntypedStorage = untyped
    state = {"x": Evil(untyped, 1)}
    path = write_checkpoint(tmp_path / "w.pth", state, [], fake_torch.torch)
    with pytest.raises(UnsafeWeights, match=r"global torch.UntypedStorage"):
        load_state_dict(path)


def test_a_pickle_cannot_tamper_with_the_next_load(tmp_path, fake_torch):
    # GLOBAL torch.FloatStorage, then BUILD {"dtype": "<f8"} onto it: sets an attribute of the
    # stand-in the unpickler handed out; the next file must not see it
    tamper = b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x03\x00\x00\x00<f8sb."
    with zipfile.ZipFile(tmp_path / "tamper.pth", "w") as archive:
        archive.writestr("archive/data.pkl", tamper)
    with pytest.raises(WeightsError, match="not a state dict"):
        load_state_dict(tmp_path / "tamper.pth")
    state, storages, expected = tensors_state(fake_torch)
    loaded = load_state_dict(
        write_checkpoint(tmp_path / "w.pth", state, storages, fake_torch.torch)
    )
    assert loaded["conv.weight"].dtype == np.float32
    np.testing.assert_array_equal(loaded["conv.weight"], expected["conv.weight"])


@pytest.mark.parametrize(
    ("offset", "size", "stride", "message"),
    [
        (0, (4, 4), (4, 1), "has more elements than its storage of 12"),
        (0, (2, 4), (9, 1), "runs past the end of its storage"),
        (10, (3,), (1,), "runs past the end"),
        (0, (1000, 1000), (0, 0), "has more elements than its storage"),  # stride 0: no blow-up
        (-1, (2,), (1,), "malformed tensor record"),
        (0, (2, 2), (1,), "malformed tensor record"),
    ],
)
def test_out_of_bounds_tensors_are_refused(tmp_path, fake_torch, offset, size, stride, message):
    storage = Storage("0", np.arange(12, dtype=np.float32))
    state = {"w": Tensor(fake_torch.rebuild, storage, offset, size, stride)}
    path = write_checkpoint(tmp_path / "w.pth", state, [storage], fake_torch.torch)
    with pytest.raises(WeightsError, match=message):
        load_state_dict(path)


def test_a_tensor_is_never_rebuilt_from_another_tensor(tmp_path, fake_torch):
    """A rebuilt (2, 8) tensor as the "storage" of another would let its strides skip rows
    past the end of the buffer: only storages read from the archive are accepted."""
    storage = Storage("0", np.arange(16, dtype=np.float32))
    inner = Tensor(fake_torch.rebuild, storage, 0, (2, 8), (8, 1))
    state = {"w": Tensor(fake_torch.rebuild, inner, 1, (15,), (1,))}
    path = write_checkpoint(tmp_path / "w.pth", state, [storage], fake_torch.torch)
    with pytest.raises(WeightsError, match="rebuilt from something that is not a storage"):
        load_state_dict(path)


def test_short_storage_is_refused(tmp_path, fake_torch):
    storage = Storage("0", np.arange(12, dtype=np.float32))
    state = {"w": Tensor(fake_torch.rebuild, storage, 0, (12,), (1,))}
    path = write_checkpoint(tmp_path / "w.pth", state, [], fake_torch.torch)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("archive/data/0", b"\x00" * 20)
    with pytest.raises(WeightsError, match="holds 20 bytes, expected 12 x 4"):
        load_state_dict(path)


def test_missing_storage_is_refused(tmp_path, fake_torch):
    storage = Storage("7", np.arange(3, dtype=np.float32))
    state = {"w": Tensor(fake_torch.rebuild, storage, 0, (3,), (1,))}
    path = write_checkpoint(tmp_path / "w.pth", state, [], fake_torch.torch)
    with pytest.raises(WeightsError, match="archive/data/7 is missing"):
        load_state_dict(path)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_bytes(b"\x80\x02\x8a\x0alegacy torch pickle"), "legacy"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("x.txt", "hi"), "one <name>/data.pkl"),
        (lambda p: p.write_bytes(b"PK\x03\x04 a broken zip"), "corrupt or truncated"),
    ],
)
def test_not_a_checkpoint(tmp_path, write, message):
    path = tmp_path / "model.pth"
    write(path)
    with pytest.raises(WeightsError, match=message):
        load_state_dict(path)


def test_a_pickled_list_is_not_a_state_dict(tmp_path, fake_torch):
    path = write_checkpoint(tmp_path / "w.pth", [1, 2], [], fake_torch.torch)
    with pytest.raises(WeightsError, match="holds a list, not a state dict"):
        load_state_dict(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing.pth"):
        load_state_dict(tmp_path / "nothing.pth")


# -- safetensors -------------------------------------------------------------------------------


def safetensors_sample() -> tuple[dict[str, np.ndarray], dict[str, str]]:
    rng = np.random.default_rng(1)
    arrays = {
        "conv1.weight": rng.normal(size=(4, 3, 2, 2)).astype(np.float32),
        "bn1.bias": rng.normal(size=4).astype(np.float16),
        "bn1.num_batches_tracked": np.array(5, np.int64),
        "empty": np.zeros((0,), np.float32),
    }
    return arrays, {"conv1.weight": "F32", "bn1.bias": "F16", "bn1.num_batches_tracked": "I64",
                    "empty": "F32"}  # fmt: skip


def test_safetensors_round_trip(tmp_path):
    arrays, codes = safetensors_sample()
    loaded = load_state_dict(write_safetensors(tmp_path / "w.safetensors", arrays, codes))
    assert list(loaded) == list(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded[name], array)


def rewrite_header(path: Path, change) -> None:
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    change(header)
    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + raw[8 + size :])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-10]), "past the end of the data"),
        (lambda p: p.write_bytes(p.read_bytes()[:40]), "truncated, or not a safetensors"),
        (lambda p: p.write_bytes(b"\x01\x02"), "too short"),
        (lambda p: p.write_bytes(b"\x05" + b"\x00" * 7 + b"{oops"), "not valid JSON"),
        (lambda p: p.write_bytes(b"\x02" + b"\x00" * 7 + b"[]"), "not a JSON object"),
        (
            lambda p: rewrite_header(p, lambda h: h["bn1.bias"].update(dtype="BF16")),
            "dtype 'BF16'; supported: F32, F16, I64",
        ),
        (
            lambda p: rewrite_header(p, lambda h: h["conv1.weight"].update(shape=[4, 3, 2, 3])),
            "needs 288 bytes, its offsets span 192",
        ),
        (
            lambda p: rewrite_header(p, lambda h: h["conv1.weight"].update(shape="big")),
            "malformed shape",
        ),
        (
            lambda p: rewrite_header(p, lambda h: h["conv1.weight"].update(data_offsets=[-1, 5])),
            "malformed data_offsets",
        ),
        (lambda p: rewrite_header(p, lambda h: h["bn1.bias"].pop("shape")), "lacks dtype"),
    ],
)
def test_damaged_safetensors_are_refused(tmp_path, damage, message):
    path = write_safetensors(tmp_path / "w.safetensors", *safetensors_sample())
    damage(path)
    with pytest.raises(WeightsError, match=message) as info:
        load_state_dict(path)
    assert "w.safetensors" in str(info.value)


def test_a_file_of_another_kind_is_named_clearly(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not weights")
    with pytest.raises(WeightsError, match=r"photo.jpg: neither a PyTorch .pth \(zip\) nor a"):
        load_state_dict(path)


# -- weights that describe nothing ---------------------------------------------------------------


def _write(tmp_path: Path, state: dict[str, np.ndarray]) -> Path:
    floats = {k: v for k, v in state.items() if v.dtype == np.float32}
    return write_safetensors(tmp_path / "w.safetensors", floats, dict.fromkeys(floats, "F32"))


def _descriptors(state: dict[str, np.ndarray]) -> np.ndarray:
    """The descriptors of two different random 'photos' (32 x 32 is enough for the network)."""
    photos = np.random.default_rng(3).normal(size=(2, 3, 32, 32)).astype(np.float32)
    return ResNet18.from_state_dict(state).describe(photos)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_tensor_is_refused_naming_file_and_tensor(tmp_path, bad):
    state = random_state()
    state["layer3.1.bn2.running_var"][7] = bad
    path = _write(tmp_path, state)
    with pytest.raises(WeightsError, match=rf"{path}: tensor 'layer3.1.bn2.running_var' holds NaN"):
        load_state_dict(path)


@pytest.mark.parametrize(
    ("zeroed", "named"),
    [
        (lambda k: True, "conv1.weight is all zero"),  # every tensor: the whole file is zeros
        (lambda k: k == "bn1.weight", "bn1.weight is all zero"),
        (
            lambda k: k in ("layer2.0.conv2.weight", "layer2.0.downsample.1.weight"),
            "layer2.0.conv2.weight and layer2.0.downsample.1.weight are all zero",
        ),
    ],
)
def test_zeros_that_cut_every_photo_off_are_refused(tmp_path, zeroed, named):
    state = {k: np.zeros_like(v) if zeroed(k) else v for k, v in random_state().items()}
    a, b = _descriptors(state)
    np.testing.assert_allclose(a, b, atol=1e-6)  # what the rule is about: one descriptor for all
    path = _write(tmp_path, state)
    with pytest.raises(WeightsError, match=rf"{path}: {named}: every photo would get the same"):
        load_state_dict(path)


@pytest.mark.parametrize(
    "zeroed",
    [
        lambda k: k.endswith(".bn2.weight"),  # torchvision's zero_init_residual
        lambda k: k == "layer2.0.downsample.0.weight",  # the main path still carries the photo
        lambda k: k.endswith(("bias", "running_mean")),  # a fresh network's batch norms
    ],
)
def test_zeros_that_leave_a_path_are_accepted(tmp_path, zeroed):
    state = {k: np.zeros_like(v) if zeroed(k) else v for k, v in random_state().items()}
    a, b = _descriptors(state)
    assert np.abs(a - b).max() > 1e-3  # the photos are told apart
    loaded = load_state_dict(_write(tmp_path, state))
    assert all(np.array_equal(loaded[k], state[k]) for k in loaded)


def test_describe_with_weights_that_cut_every_photo_off(tmp_path, capsys):
    """From the command line: exit 2, one line naming the file and the tensor."""
    from PIL import Image

    from capstone.frontends.cli import main

    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (200, 20, 20)).save(photo)
    zero = _write(tmp_path, {k: np.zeros_like(v) for k, v in random_state().items()})
    assert main(["describe", str(photo), "--weights", str(zero)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        f"error: {zero}: conv1.weight is all zero: every photo would get the same descriptor "
        "(these are not trained ResNet-18 weights)\n"
    )
