"""Tests of capstone.photos.resnet: every fast layer against its plain loop reference, the whole
folded network against the unfolded one, and photo files to descriptors against torchvision's
own answer (a fixture made once with torchvision, tests/photos/golden/; and torchvision live,
where it is installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from resnet_support import random_state, state_fingerprint, torchvision_shapes, write_safetensors
from threadpoolctl import threadpool_limits

from capstone.photos import resnet
from capstone.photos.describer import PhotoDescriber
from capstone.photos.preprocess import load_photo
from capstone.photos.resnet import (
    ResNet18,
    batch_norm_reference,
    check_state_dict,
    conv2d,
    conv2d_reference,
    conv_matrix,
    fold_batch_norm,
    im2col,
    max_pool,
    max_pool_reference,
    resnet18_reference,
    state_dict_shapes,
)

GOLDEN = Path(__file__).parent / "golden"  # made by golden/make_golden.py, with torchvision
# The fast network against torchvision or the float64 reference: |difference| <= F32_TOL *
# (|expected| + max |expected|), a few float32 roundings. Measured (2026-12-07): at most
# 2.0e-7 * max |expected| against torchvision 2.14.1 (golden photos and live), 2.7e-7 against
# the reference; a batch-norm epsilon of 1e-3 instead of 1e-5 moves the golden one to 1.7e-3.
F32_TOL = 1e-6


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def nchw(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 3, 1, 2)


def fast_conv(x, w, b, stride, padding):
    """The fast convolution on channels-first arrays, for comparison with the reference."""
    out = conv2d(nhwc(x), conv_matrix(w), b, kernel=w.shape[-1], stride=stride, padding=padding)
    return nchw(out)


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    return random_state()


def assert_float32_close(out: np.ndarray, expected: np.ndarray) -> None:
    """``out`` is float32 and within `F32_TOL` of ``expected``."""
    assert out.shape == expected.shape and out.dtype == np.float32
    atol = F32_TOL * np.abs(expected).max()
    np.testing.assert_allclose(out, expected, rtol=F32_TOL, atol=atol)


# -- layers ------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 2),
    c_in=st.integers(1, 4),
    c_out=st.integers(1, 4),
    kernel=st.sampled_from([1, 2, 3, 5, 7]),
    stride=st.integers(1, 3),
    padding=st.integers(0, 3),
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_conv2d_matches_reference(batch, c_in, c_out, kernel, stride, padding, height, width, seed):
    if height + 2 * padding < kernel or width + 2 * padding < kernel:
        return  # no output position
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, c_in, height, width)).astype(np.float32)
    w = rng.normal(size=(c_out, c_in, kernel, kernel)).astype(np.float32)
    b = rng.normal(size=c_out).astype(np.float32)
    out = fast_conv(x, w, b, stride, padding)
    expected = conv2d_reference(x, w, b, stride=stride, padding=padding)
    assert out.dtype == np.float32
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "stride", "padding", "size"),
    [
        (3, 8, 7, 2, 3, 32),  # the stem
        (8, 8, 3, 1, 1, 14),  # inside a block
        (8, 16, 3, 2, 1, 15),  # first conv of layer2..4, odd size
        (8, 16, 1, 2, 0, 14),  # downsample
    ],
)
def test_conv2d_resnet_shapes(c_in, c_out, kernel, stride, padding, size):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, c_in, size, size)).astype(np.float32)
    w = rng.normal(size=(c_out, c_in, kernel, kernel)).astype(np.float32)
    b = rng.normal(size=c_out).astype(np.float32)
    expected = conv2d_reference(x, w, b, stride=stride, padding=padding)
    assert expected.shape[2] == (size + 2 * padding - kernel) // stride + 1
    np.testing.assert_allclose(fast_conv(x, w, b, stride, padding), expected, atol=1e-4)


def test_conv2d_reference_by_hand():
    # a 2x2 image, 2x2 kernel of ones, padding 1, stride 1: each output sums its window
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    out = conv2d_reference(x, np.ones((1, 1, 2, 2)), np.array([0.5]), stride=1, padding=1)
    expected = np.array([[1, 3, 2], [4, 10, 6], [3, 7, 4]]) + 0.5
    np.testing.assert_array_equal(out[0, 0], expected)


def test_the_references_compute_in_float64_from_float32_inputs():
    """The oracles keep float64 throughout: (1 + 2^-23)^2 needs 47 bits, float32 keeps 24."""
    x = np.full((1, 1, 1, 1), 1 + 2.0**-23, np.float32)
    out = conv2d_reference(x, x)  # stride 1, no padding: torch's defaults
    assert out.dtype == np.float64 and out.shape == (1, 1, 1, 1)
    assert out[0, 0, 0, 0] == (1 + 2.0**-23) ** 2 != float(np.float32(1 + 2.0**-23) ** 2)
    assert max_pool_reference(x.repeat(3, axis=2)).dtype == np.float64
    one = np.ones(1, np.float32)
    normed = batch_norm_reference(x, one, one * 0, one * 0, one, eps=0)
    assert normed.dtype == np.float64 and normed[0, 0, 0, 0] == 1 + 2.0**-23


def test_conv2d_reference_defaults_to_stride_1_and_no_padding():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    out = conv2d_reference(x, np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(out[0, 0], [[8, 12], [20, 24]])


def test_im2col_rows_are_windows():
    x = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3)
    cols = im2col(x, kernel=3, stride=2, padding=0)
    assert cols.shape == (2 * 2 * 2, 27)
    np.testing.assert_array_equal(cols[3], x[0, 2:5, 2:5, :].ravel())  # b=0, i=1, j=1


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 2),
    channels=st.integers(1, 3),
    height=st.integers(1, 10),
    width=st.integers(1, 10),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_max_pool_matches_reference(batch, channels, height, width, kernel, stride, seed):
    padding = kernel // 2  # torch requires padding <= kernel / 2
    # all negative: zero padding instead of -inf would win and be caught
    x = -np.random.default_rng(seed).uniform(1, 2, (batch, channels, height, width))
    x = x.astype(np.float32)
    out = nchw(max_pool(nhwc(x), kernel, stride, padding))
    expected = max_pool_reference(x, kernel, stride, padding)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_max_pool_resnet_default():
    x = -np.random.default_rng(2).uniform(1, 2, (2, 4, 112, 112)).astype(np.float32)
    out = nchw(max_pool(nhwc(x)))
    assert out.shape == (2, 4, 56, 56)
    np.testing.assert_array_equal(out, max_pool_reference(x))


def test_batch_norm_reference_standardizes():
    x = np.random.default_rng(3).normal(3, 2, (4, 2, 5, 5))
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    out = batch_norm_reference(x, np.ones(2), np.zeros(2), mean, var, eps=0)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1)
    shifted = batch_norm_reference(x, np.full(2, 2.0), np.full(2, 5.0), mean, var, eps=0)
    np.testing.assert_allclose(shifted, 2 * out + 5)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, 1, 1), (1, 2, 0), (7, 2, 3)])
def test_folded_batch_norm_equals_conv_then_batch_norm(kernel, stride, padding):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, 12, 12)).astype(np.float32)
    w = rng.normal(size=(6, 4, kernel, kernel)).astype(np.float32)
    gamma, beta, mean = rng.normal(size=(3, 6))
    var = rng.uniform(0, 2, 6)
    var[0] = 0  # a dead channel: eps alone keeps it finite
    folded, bias = fold_batch_norm(w, gamma, beta, mean, var)
    assert folded.dtype == bias.dtype == np.float32
    expected = batch_norm_reference(
        conv2d_reference(x, w, stride=stride, padding=padding), gamma, beta, mean, var
    )
    out = fast_conv(x, folded, bias, stride, padding)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


# -- the whole network -------------------------------------------------------------------------


def test_state_dict_shapes_are_torchvisions():
    expected = {
        k: s for k, s in torchvision_shapes().items() if not k.endswith("num_batches_tracked")
    }
    assert state_dict_shapes() == expected


@pytest.mark.parametrize(("batch", "size"), [(1, 224), (3, 64), (2, 37)])
def test_network_matches_unfolded_reference(state, batch, size):
    x = np.random.default_rng(batch).normal(size=(batch, 3, size, size)).astype(np.float32)
    out = ResNet18.from_state_dict(state).describe(x)
    expected = resnet18_reference(state, x)
    assert expected.shape == (batch, 512)
    assert expected.dtype == np.float64  # an oracle of float32 weights and photos, in float64
    assert np.isfinite(expected).all() and np.abs(expected).max() > 0.1
    assert_float32_close(out, expected)


@pytest.mark.parametrize("blas_threads", [1, None])
def test_batch_rows_are_independent_bit_for_bit(state, blas_threads):
    """A photo's descriptor is the same, bit for bit, alone or in a batch of 8 (what lets the
    workers of `capstone.photos.pool` batch photos as they like)."""
    net = ResNet18.from_state_dict(state)
    x = np.random.default_rng(5).normal(size=(8, 3, 224, 224)).astype(np.float32)
    with threadpool_limits(blas_threads):
        together = net.describe(x)
        alone = np.concatenate([net.describe(x[i : i + 1]) for i in range(8)])
    np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("rows", [1, 2 * 25, 3 * 25])
def test_conv2d_in_groups_of_photos_matches_reference(monkeypatch, rows):
    """With 5 photos of 5 x 5 outputs, products of 1 photo, 2 (+ a last of 1) or 3 (+ 2)."""
    monkeypatch.setattr(resnet, "_GEMM_ROWS", rows)
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(5, 4, 5, 5)).astype(np.float32)
    w = rng.normal(size=(6, 4, 3, 3)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    expected = conv2d_reference(x, w, b, stride=1, padding=1)
    np.testing.assert_allclose(fast_conv(x, w, b, 1, 1), expected, rtol=1e-4, atol=1e-4)


def test_descriptors_are_non_negative_averages(state):
    out = ResNet18.from_state_dict(state).describe(np.zeros((1, 3, 224, 224), np.float32))
    assert (out >= 0).all()  # global average of ReLU outputs


def test_fc_and_counters_are_optional(state):
    trimmed = {k: v for k, v in state.items() if not k.startswith("fc.")}
    trimmed = {k: v for k, v in trimmed.items() if not k.endswith("num_batches_tracked")}
    x = np.random.default_rng(6).normal(size=(1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(
        ResNet18.from_state_dict(trimmed).describe(x), ResNet18.from_state_dict(state).describe(x)
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("layer3.1.bn2.running_var"), "missing 'layer3.1.bn2.running_var'"),
        (
            lambda s: s.update({"layer2.0.downsample.0.weight": np.zeros((128, 64, 3, 3))}),
            r"'layer2.0.downsample.0.weight' has shape \(128, 64, 3, 3\), expected "
            r"\(128, 64, 1, 1\)",
        ),
        (lambda s: s.update({"layer1.2.conv1.weight": np.zeros(1)}), "unexpected key"),
        (lambda s: s.update({"fc.weight": np.zeros((10, 512))}), "'fc.weight' has shape"),
        (
            lambda s: s.update({"bn1.running_var": -np.ones(64, np.float32)}),
            "'bn1.running_var' has a negative variance",
        ),
        (
            lambda s: s["conv1.weight"].__setitem__((0, 0, 0, 0), np.nan),
            "'conv1.weight' holds NaN",
        ),
        (
            lambda s: s.update({"bn1.bias": np.zeros(64, np.int64)}),
            "'bn1.bias' has dtype int64",
        ),
    ],
)
def test_bad_state_dict_names_the_key(state, change, message):
    broken = {k: v.copy() for k, v in state.items()}
    change(broken)
    with pytest.raises(ValueError, match=message):
        ResNet18.from_state_dict(broken)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["extra.weight"], "unexpected key 'extra.weight': not torchvision's resnet18 layout"),
        (
            ["b.weight", "a.weight", "c.bias"],
            "unexpected key 'a.weight' (and 2 more): not torchvision's resnet18 layout",
        ),
        (
            ["b.weight", "a.weight"],
            "unexpected key 'a.weight' (and 1 more): not torchvision's resnet18 layout",
        ),
    ],
)
def test_unexpected_keys_are_named_first_in_order_with_a_count(state, extra, message):
    with pytest.raises(ValueError) as refused:
        check_state_dict({**state, **{key: np.zeros(1, np.float32) for key in extra}})
    assert str(refused.value) == f"ResNet-18 weights: {message}"


def test_checked_weights_are_float32_and_fc_may_be_absent_in_part(state):
    as_float64 = {key: value.astype(np.float64) for key, value in state.items()}
    checked = check_state_dict(as_float64)
    assert checked.keys() == state_dict_shapes().keys()
    assert {value.dtype for value in checked.values()} == {np.dtype(np.float32)}
    without_fc_weight = {k: v for k, v in state.items() if k != "fc.weight"}
    assert "fc.bias" in check_state_dict(without_fc_weight)  # the keys after fc.weight too
    without_fc_weight["fc.bias"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"'fc\.bias' has shape"):
        check_state_dict(without_fc_weight)


def test_describe_converts_any_batch_to_float32_first(state):
    x = np.random.default_rng(6).normal(size=(1, 3, 40, 40))
    net = ResNet18.from_state_dict(state)
    np.testing.assert_array_equal(net.describe(x), net.describe(x.astype(np.float32)))


@pytest.mark.parametrize("shape", [(3, 224, 224), (1, 4, 224, 224), (1, 3, 0, 224)])
def test_describe_refuses_bad_batch_shapes(state, shape):
    net = ResNet18.from_state_dict(state)
    with pytest.raises(ValueError, match=r"must have shape \(B, 3, H, W\)"):
        net.describe(np.zeros(shape, np.float32))


# -- torchvision's answer ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    """torchvision's preprocessed tensors and descriptors of the photos in golden/ (the weights'
    seed, their fingerprint, the photo names, the versions used)."""
    with np.load(GOLDEN / "resnet18.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def golden_state(golden) -> dict[str, np.ndarray]:
    return random_state(int(golden["seed"]))


def test_golden_weights_regenerate_from_the_seed(golden, golden_state):
    # if NumPy ever draws another stream, the fixture must be made again, not the tests loosened
    np.testing.assert_allclose(
        state_fingerprint(golden_state),
        golden["fingerprint"],
        rtol=1e-6,
        err_msg="random_state(seed) no longer draws the fixture's weights: run make_golden.py",
    )


def test_golden_preprocessing_is_torchvisions(golden):
    assert len(golden["names"]) == len(golden["tensors"]) == 6
    for name, expected in zip(golden["names"], golden["tensors"], strict=True):
        # measured: bit-identical (the same Pillow resize, the same float32 arithmetic)
        out = load_photo(GOLDEN / name)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6, err_msg=name)


def test_golden_network_is_torchvisions(golden, golden_state):
    expected = golden["descriptors"]
    assert (expected > 0).mean() > 0.8  # a fixture of dead units would prove little
    out = ResNet18.from_state_dict(golden_state).describe(golden["tensors"])
    assert_float32_close(out, expected)


def test_golden_photo_files_to_descriptors(golden, golden_state, tmp_path):
    # the whole way a user's photo goes: a weights file, decoding, preprocessing, the network
    weights = write_safetensors(tmp_path / "resnet18.safetensors", golden_state)
    paths = [GOLDEN / name for name in golden["names"]]
    vectors, described, failures = PhotoDescriber(weights).describe_paths(paths, progress=False)
    assert (described, failures) == (paths, [])
    assert_float32_close(vectors, golden["descriptors"])


def test_against_torchvision(state):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(weights=None).eval()
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    model.fc = torch.nn.Identity()
    x = np.random.default_rng(7).normal(size=(2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert_float32_close(ResNet18.from_state_dict(state).describe(x), expected)
