"""ResNet-18 inference in NumPy: torchvision's network, up to its 512-d global-average pool.

The course's image descriptors are torchvision's ``resnet18`` (ImageNet weights) with the final
fully connected layer removed: a (3, 224, 224) normalized photo goes through

    conv 7x7/2 (64) -> BN -> ReLU -> max-pool 3x3/2
    -> layer1: 2 basic blocks,  64 channels, stride 1
    -> layer2: 2 basic blocks, 128 channels, first stride 2 (+ 1x1/2 downsample of the shortcut)
    -> layer3: 2 basic blocks, 256 channels, first stride 2 (+ downsample)
    -> layer4: 2 basic blocks, 512 channels, first stride 2 (+ downsample)
    -> global average pool -> (512,)

where a basic block is ``relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut(x))``.

Two implementations live here:

* the fast one, `ResNet18`: every batch norm is folded into the convolution before it at load
  time, activations are kept channels-last (B, H, W, C), and each convolution is an im2col
  copy plus a float32 BLAS matrix product per group of photos (sized to stay in cache);
* plain references written for clarity with loops, on channels-first (B, C, H, W) float64
  arrays: `conv2d_reference`, `max_pool_reference`, `batch_norm_reference` and
  `resnet18_reference`, which runs the unfolded network layer by layer. The tests check the
  fast path against them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = [
    "BN_EPS",
    "DESCRIPTOR_SIZE",
    "BasicBlock",
    "Conv",
    "ResNet18",
    "batch_norm_reference",
    "check_state_dict",
    "conv2d",
    "conv2d_reference",
    "conv_matrix",
    "fold_batch_norm",
    "im2col",
    "max_pool",
    "max_pool_reference",
    "resnet18_reference",
    "state_dict_shapes",
]

BN_EPS = 1e-5  # torch.nn.BatchNorm2d's default, used by torchvision's ResNet
DESCRIPTOR_SIZE = 512
_BN_FIELDS = ("weight", "bias", "running_mean", "running_var")


# -- the architecture, as torchvision names its weights -----------------------------------------


def _blocks() -> Iterator[tuple[str, int, int, int]]:
    """(name, stride, in channels, out channels) of the 8 basic blocks, in order."""
    c_in = 64
    for layer, (c_out, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
        for index in range(2):
            yield f"layer{layer}.{index}", stride if index == 0 else 1, c_in, c_out
            c_in = c_out


def _has_downsample(stride: int, c_in: int, c_out: int) -> bool:
    return stride != 1 or c_in != c_out


def state_dict_shapes() -> dict[str, tuple[int, ...]]:
    """The shape of every weight of torchvision's ``resnet18`` state dict, by key.

    ``num_batches_tracked`` (a training counter) is left out; ``fc.*`` is listed though the
    descriptor does not use it.

    Examples
    --------
    >>> shapes = state_dict_shapes()
    >>> shapes["conv1.weight"], shapes["layer2.0.downsample.0.weight"], len(shapes)
    ((64, 3, 7, 7), (128, 64, 1, 1), 102)
    """
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}
    shapes |= {f"bn1.{field}": (64,) for field in _BN_FIELDS}
    for name, stride, c_in, c_out in _blocks():
        shapes[f"{name}.conv1.weight"] = (c_out, c_in, 3, 3)
        shapes |= {f"{name}.bn1.{field}": (c_out,) for field in _BN_FIELDS}
        shapes[f"{name}.conv2.weight"] = (c_out, c_out, 3, 3)
        shapes |= {f"{name}.bn2.{field}": (c_out,) for field in _BN_FIELDS}
        if _has_downsample(stride, c_in, c_out):
            shapes[f"{name}.downsample.0.weight"] = (c_out, c_in, 1, 1)
            shapes |= {f"{name}.downsample.1.{field}": (c_out,) for field in _BN_FIELDS}
    shapes["fc.weight"] = (1000, DESCRIPTOR_SIZE)
    shapes["fc.bias"] = (1000,)
    return shapes


def _is_counter(key: str, shapes: Mapping[str, tuple[int, ...]]) -> bool:
    """Whether ``key`` is the ``num_batches_tracked`` of one of the batch norms."""
    suffix = ".num_batches_tracked"
    return key.endswith(suffix) and f"{key[: -len(suffix)]}.running_mean" in shapes


def check_state_dict(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check a torchvision ``resnet18`` state dict key by key; return its weights as float32.

    ``fc.weight`` and ``fc.bias`` may be absent (the descriptor stops before ``fc``);
    ``*.num_batches_tracked`` entries are ignored.

    Returns
    -------
    dict[str, numpy.ndarray]
        Every key of `state_dict_shapes` present in ``state``, as a float32 array.

    Raises
    ------
    ValueError
        Naming the key: a missing weight, a wrong shape, a non-float or non-finite value, a
        negative running variance, or a key that is not a ResNet-18 weight.
    """
    shapes = state_dict_shapes()
    unexpected = sorted(k for k in state if k not in shapes and not _is_counter(k, shapes))
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise ValueError(
            f"ResNet-18 weights: unexpected key {unexpected[0]!r}{more}: not torchvision's "
            "resnet18 layout"
        )
    weights = {}
    for key, shape in shapes.items():
        if key not in state:
            if key.startswith("fc."):
                continue
            raise ValueError(f"ResNet-18 weights: missing {key!r} (expected shape {shape})")
        value = np.asarray(state[key])
        if value.shape != shape:
            raise ValueError(
                f"ResNet-18 weights: {key!r} has shape {value.shape}, expected {shape}"
            )
        if not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"ResNet-18 weights: {key!r} has dtype {value.dtype}, not a float")
        if not np.isfinite(value).all():
            raise ValueError(f"ResNet-18 weights: {key!r} holds NaN or infinite values")
        if key.endswith("running_var") and (value < 0).any():
            raise ValueError(f"ResNet-18 weights: {key!r} has a negative variance")
        weights[key] = value.astype(np.float32)
    return weights


# -- the fast path: channels-last, folded batch norm, im2col + one matrix product ---------------


def fold_batch_norm(
    weight: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float = BN_EPS,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold an inference-mode batch norm into the (bias-free) convolution before it.

    With ``s = gamma / sqrt(var + eps)``, ``BN(conv(x, W)) = conv(x, W') + b'`` for

        W'[o] = W[o] * s[o]        b'[o] = beta[o] - mean[o] * s[o]

    Parameters
    ----------
    weight : numpy.ndarray, shape-(C_out, C_in, kh, kw)
        The convolution's kernel, torch layout.
    gamma, beta, mean, var : numpy.ndarray, shape-(C_out,)
        The batch norm's ``weight``, ``bias``, ``running_mean`` and ``running_var``.
    eps : float, optional (default=1e-5)

    Returns
    -------
    weight : numpy.ndarray, shape-(C_out, C_in, kh, kw), float32
    bias : numpy.ndarray, shape-(C_out,), float32
    """
    # float64 for the scale: var + eps is tiny for dead channels
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    folded = np.asarray(weight, np.float64) * scale[:, None, None, None]
    bias = np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * scale
    return folded.astype(np.float32), bias.astype(np.float32)


def conv_matrix(weight: np.ndarray) -> np.ndarray:
    """A torch-layout kernel (C_out, C_in, kh, kw) as the (kh * kw * C_in, C_out) matrix that
    multiplies `im2col` rows (whose order is row of the window, column, channel)."""
    c_out = weight.shape[0]
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(-1, c_out), np.float32)


def im2col(x: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """Every ``kernel x kernel`` window of a zero-padded channels-last batch, one row each.

    Parameters
    ----------
    x : numpy.ndarray, shape-(B, H, W, C)
    kernel, stride, padding : int

    Returns
    -------
    numpy.ndarray, shape-(B * H_out * W_out, kernel * kernel * C)
        Row ``(b, i, j)`` holds ``xpad[b, s*i : s*i + k, s*j : s*j + k, :]`` flattened, with
        ``H_out = (H + 2 padding - kernel) // stride + 1`` (the same for W).
    """
    batch, height, width, channels = x.shape
    if padding:
        padded = np.zeros(
            (batch, height + 2 * padding, width + 2 * padding, channels), dtype=x.dtype
        )
        padded[:, padding : padding + height, padding : padding + width] = x
        x = padded
    h_out = (x.shape[1] - kernel) // stride + 1
    w_out = (x.shape[2] - kernel) // stride + 1
    sb, sh, sw, sc = x.strides
    # A view of the windows (no copy); the reshape below is the one copy of im2col, written in
    # the order the matrix product reads it.
    windows = as_strided(
        x,
        shape=(batch, h_out, w_out, kernel, kernel, channels),
        strides=(sb, sh * stride, sw * stride, sh, sw, sc),
        writeable=False,
    )
    return windows.reshape(batch * h_out * w_out, kernel * kernel * channels)


# Rows of im2col per matrix product: a photo's early layers (3,136-12,544 positions) are
# multiplied one photo at a time, so each im2col copy (at most 12,544 x 576 float32) is written
# and read while still in cache, and the late layers (49-784 positions a photo) of several photos
# at once, so the product is tall enough to keep the BLAS kernel busy. Measured (1 BLAS thread):
# one product over a batch of 8 was slower per photo than batch 1 (its im2col copy, 58 MB,
# streams through memory twice).
_GEMM_ROWS = 4096

# `ResNet18.describe` runs the stem, layer1 and layer2 (its first 4 blocks) one photo at a time:
# a photo's activations there (up to 3.2 MB) stay in cache between layers, where a batch of 8's
# (up to 26 MB) would stream through memory at every ReLU, sum and max pool; layer3 and layer4
# then run over the whole batch, whose products reuse each weight matrix across photos.
# Measured (1 BLAS thread, 8 photos): 50-51 ms a photo, against 53-57 ms for the batch in one
# pass and 54-57 ms one photo at a time.
_PER_PHOTO_BLOCKS = 4


def conv2d(
    x: np.ndarray,
    matrix: np.ndarray,
    bias: np.ndarray,
    *,
    kernel: int,
    stride: int,
    padding: int,
) -> np.ndarray:
    """A 2-d convolution of a channels-last batch: `im2col` then a matrix product per group of
    photos (whole photos, about `_GEMM_ROWS` output positions a group).

        out[b, i, j, o] = bias[o] + sum_{p, q, c} xpad[b, s*i + p, s*j + q, c] W[o, c, p, q]

    Each photo's rows are computed alike whatever else is in the batch, so a descriptor does
    not depend on the batch it was computed in (the tests check it bit for bit).

    Parameters
    ----------
    x : numpy.ndarray, shape-(B, H, W, C_in), float32
    matrix : numpy.ndarray, shape-(kernel * kernel * C_in, C_out), float32
        The kernel W as `conv_matrix` lays it out.
    bias : numpy.ndarray, shape-(C_out,), float32
    kernel, stride, padding : int

    Returns
    -------
    numpy.ndarray, shape-(B, H_out, W_out, C_out), float32
    """
    batch, height, width, _ = x.shape
    h_out = (height + 2 * padding - kernel) // stride + 1
    w_out = (width + 2 * padding - kernel) // stride + 1
    c_out = matrix.shape[1]
    out = np.empty((batch, h_out * w_out, c_out), np.float32)
    group = max(1, _GEMM_ROWS // (h_out * w_out))
    for b in range(0, batch, group):
        cols = im2col(x[b : b + group], kernel, stride, padding)
        np.matmul(cols, matrix, out=out[b : b + group].reshape(-1, c_out))
    out += bias
    return out.reshape(batch, h_out, w_out, c_out)


def max_pool(x: np.ndarray, kernel: int = 3, stride: int = 2, padding: int = 1) -> np.ndarray:
    """Max-pool a channels-last batch; padding is -inf, so it never wins.

        out[b, i, j, c] = max_{p, q < kernel} xpad[b, s*i + p, s*j + q, c]

    Parameters
    ----------
    x : numpy.ndarray, shape-(B, H, W, C)
    kernel, stride, padding : int, optional (default=3, 2, 1, ResNet's)

    Returns
    -------
    numpy.ndarray, shape-(B, H_out, W_out, C)
        ``H_out = (H + 2 padding - kernel) // stride + 1`` (the same for W).
    """
    batch, height, width, channels = x.shape
    padded = np.full(
        (batch, height + 2 * padding, width + 2 * padding, channels), -np.inf, dtype=x.dtype
    )
    padded[:, padding : padding + height, padding : padding + width] = x
    h_out = (padded.shape[1] - kernel) // stride + 1
    w_out = (padded.shape[2] - kernel) // stride + 1
    # separably, as a maximum is: over the kernel's columns, then its rows (2 kernel strided
    # slices, not kernel^2; the same values, bit for bit)
    rows = padded[:, :, 0 : stride * w_out : stride].copy()
    for q in range(1, kernel):
        np.maximum(rows, padded[:, :, q : q + stride * w_out : stride], out=rows)
    out = rows[:, 0 : stride * h_out : stride].copy()
    for p in range(1, kernel):
        np.maximum(out, rows[:, p : p + stride * h_out : stride], out=out)
    return out


@dataclass(frozen=True)
class Conv:
    """A convolution with its batch norm folded in (`fold_batch_norm`), ready for `conv2d`.

    Attributes
    ----------
    matrix : numpy.ndarray, shape-(kernel * kernel * C_in, C_out), float32
    bias : numpy.ndarray, shape-(C_out,), float32
    kernel, stride, padding : int
    """

    matrix: np.ndarray
    bias: np.ndarray
    kernel: int
    stride: int
    padding: int

    @classmethod
    def folded(
        cls, weights: Mapping[str, np.ndarray], conv: str, bn: str, *, stride: int, padding: int
    ) -> Conv:
        """The convolution ``<conv>.weight`` followed by the batch norm ``<bn>.*``, folded."""
        kernel = weights[f"{conv}.weight"]
        folded, bias = fold_batch_norm(kernel, *(weights[f"{bn}.{f}"] for f in _BN_FIELDS))
        return cls(conv_matrix(folded), bias, kernel.shape[-1], stride, padding)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, H, W, C_in) -> (B, H_out, W_out, C_out), float32."""
        return conv2d(
            x,
            self.matrix,
            self.bias,
            kernel=self.kernel,
            stride=self.stride,
            padding=self.padding,
        )


@dataclass(frozen=True)
class BasicBlock:
    """``relu(conv2(relu(conv1(x))) + shortcut(x))``, each conv with its batch norm folded;
    the shortcut is ``x`` itself or, when the shape changes, a 1x1 strided ``downsample``."""

    conv1: Conv
    conv2: Conv
    downsample: Conv | None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, H, W, C_in) -> (B, H / stride, W / stride, C_out), channels-last float32."""
        out = self.conv1(x)
        np.maximum(out, 0, out=out)
        out = self.conv2(out)
        out += x if self.downsample is None else self.downsample(x)
        return np.maximum(out, 0, out=out)


class ResNet18:
    """torchvision's ResNet-18 without its classifier: (B, 3, H, W) photos -> (B, 512).

    Build it with `from_state_dict` (or ``capstone.photos.describer.PhotoDescriber`` from a
    weights file); batch norms are folded into the convolutions once, at load time.
    """

    def __init__(self, stem: Conv, blocks: list[BasicBlock]):
        self.stem = stem
        self.blocks = blocks

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray]) -> ResNet18:
        """Load torchvision's ``resnet18`` state-dict keys (``conv1.weight``, ``bn1.*``,
        ``layer1.0.conv1.weight``, ..., ``layer2.0.downsample.0.weight``, ...).

        Raises
        ------
        ValueError
            Naming the key of a missing, mis-shaped or invalid weight (`check_state_dict`).
        """
        weights = check_state_dict(state)
        stem = Conv.folded(weights, "conv1", "bn1", stride=2, padding=3)
        blocks = []
        for name, stride, c_in, c_out in _blocks():
            downsample = None
            if _has_downsample(stride, c_in, c_out):
                down = f"{name}.downsample"
                downsample = Conv.folded(
                    weights, f"{down}.0", f"{down}.1", stride=stride, padding=0
                )
            blocks.append(
                BasicBlock(
                    Conv.folded(weights, f"{name}.conv1", f"{name}.bn1", stride=stride, padding=1),
                    Conv.folded(weights, f"{name}.conv2", f"{name}.bn2", stride=1, padding=1),
                    downsample,
                )
            )
        return cls(stem, blocks)

    def describe(self, batch: np.ndarray) -> np.ndarray:
        """The 512-d descriptors (global-average-pooled ``layer4`` features) of a batch.

        Parameters
        ----------
        batch : numpy.ndarray, shape-(B, 3, H, W)
            Normalized photos, channels first (``capstone.photos.preprocess.to_tensor``); the
            course uses H = W = 224.

        Returns
        -------
        numpy.ndarray, shape-(B, 512), float32
        """
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[1] != 3 or 0 in batch.shape[2:]:
            raise ValueError(
                f"`batch` must have shape (B, 3, H, W) with H, W > 0, got {batch.shape}"
            )
        x = np.ascontiguousarray(batch.transpose(0, 2, 3, 1), dtype=np.float32)
        x = np.concatenate([self._early(x[i : i + 1]) for i in range(len(x))])
        for block in self.blocks[_PER_PHOTO_BLOCKS:]:
            x = block(x)
        return x.mean(axis=(1, 2), dtype=np.float32)

    def _early(self, photo: np.ndarray) -> np.ndarray:
        """The stem, max pool and first `_PER_PHOTO_BLOCKS` blocks on one channels-last photo
        (1, H, W, 3)."""
        x = self.stem(photo)
        np.maximum(x, 0, out=x)
        x = max_pool(x)
        for block in self.blocks[:_PER_PHOTO_BLOCKS]:
            x = block(x)
        return x


# -- plain references, for clarity: channels-first loops, unfolded batch norm ------------------


def conv2d_reference(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """A 2-d convolution (cross-correlation, as torch's), one kernel offset (p, q) at a time.

        out[b, o, i, j] = bias[o] + sum_{c, p, q} W[o, c, p, q] xpad[b, c, s*i + p, s*j + q]

    Parameters
    ----------
    x : numpy.ndarray, shape-(B, C_in, H, W)
    weight : numpy.ndarray, shape-(C_out, C_in, kh, kw)
    bias : numpy.ndarray, shape-(C_out,), optional
    stride, padding : int

    Returns
    -------
    numpy.ndarray, shape-(B, C_out, H_out, W_out), float64
        ``H_out = (H + 2 padding - kh) // stride + 1`` (the same for W).
    """
    x = np.pad(np.asarray(x, np.float64), [(0, 0), (0, 0), (padding, padding), (padding, padding)])
    c_out, _, kh, kw = weight.shape
    h_out = (x.shape[2] - kh) // stride + 1
    w_out = (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], c_out, h_out, w_out))
    for p in range(kh):
        for q in range(kw):
            # xpad[b, c, s*i + p, s*j + q] for every output position (i, j)
            shifted = x[:, :, p : p + stride * h_out : stride, q : q + stride * w_out : stride]
            out += np.einsum("bchw,oc->bohw", shifted, weight[:, :, p, q], optimize=True)
    if bias is not None:
        out += np.asarray(bias, np.float64)[:, None, None]
    return out


def max_pool_reference(
    x: np.ndarray, kernel: int = 3, stride: int = 2, padding: int = 1
) -> np.ndarray:
    """Max-pool one output position at a time, padding with -inf.

        out[b, c, i, j] = max_{p, q < kernel} xpad[b, c, s*i + p, s*j + q]

    Parameters
    ----------
    x : numpy.ndarray, shape-(B, C, H, W)
    kernel, stride, padding : int

    Returns
    -------
    numpy.ndarray, shape-(B, C, H_out, W_out), float64
    """
    pad = [(0, 0), (0, 0), (padding, padding), (padding, padding)]
    x = np.pad(np.asarray(x, np.float64), pad, constant_values=-np.inf)
    h_out = (x.shape[2] - kernel) // stride + 1
    w_out = (x.shape[3] - kernel) // stride + 1
    out = np.empty((*x.shape[:2], h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            window = x[:, :, i * stride : i * stride + kernel, j * stride : j * stride + kernel]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out


def batch_norm_reference(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float = BN_EPS,
) -> np.ndarray:
    """Inference-mode batch norm, channel by channel (running statistics, no batch statistics).

        out[b, c, i, j] = gamma[c] (x[b, c, i, j] - mean[c]) / sqrt(var[c] + eps) + beta[c]

    Parameters
    ----------
    x : numpy.ndarray, shape-(B, C, H, W)
    gamma, beta, mean, var : numpy.ndarray, shape-(C,)
    eps : float, optional (default=1e-5)

    Returns
    -------
    numpy.ndarray, shape-(B, C, H, W), float64
    """
    out = np.array(x, np.float64)
    for c in range(out.shape[1]):
        out[:, c] = gamma[c] * (out[:, c] - mean[c]) / np.sqrt(var[c] + eps) + beta[c]
    return out


def resnet18_reference(state: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """ResNet-18's descriptors computed plainly: every layer in turn, batch norm unfolded.

    Parameters
    ----------
    state : Mapping[str, numpy.ndarray]
        torchvision's ``resnet18`` state dict (checked as `ResNet18.from_state_dict` does).
    x : numpy.ndarray, shape-(B, 3, H, W)

    Returns
    -------
    numpy.ndarray, shape-(B, 512), float64
    """
    weights = {k: np.asarray(v, np.float64) for k, v in check_state_dict(state).items()}

    def conv_bn(y: np.ndarray, conv: str, bn: str, stride: int, padding: int) -> np.ndarray:
        y = conv2d_reference(y, weights[f"{conv}.weight"], stride=stride, padding=padding)
        return batch_norm_reference(y, *(weights[f"{bn}.{field}"] for field in _BN_FIELDS))

    def relu(y: np.ndarray) -> np.ndarray:
        return np.maximum(y, 0)

    y = relu(conv_bn(x, "conv1", "bn1", stride=2, padding=3))
    y = max_pool_reference(y, kernel=3, stride=2, padding=1)
    for name, stride, c_in, c_out in _blocks():
        out = relu(conv_bn(y, f"{name}.conv1", f"{name}.bn1", stride, padding=1))
        out = conv_bn(out, f"{name}.conv2", f"{name}.bn2", stride=1, padding=1)
        shortcut = y
        if _has_downsample(stride, c_in, c_out):
            down = f"{name}.downsample"
            shortcut = conv_bn(y, f"{down}.0", f"{down}.1", stride, padding=0)
        y = relu(out + shortcut)
    return y.mean(axis=(2, 3))
