"""Image side: a linear map from ResNet-18 descriptors into the caption embedding space.

    f(x) = x W / ||x W||        x: (N, 512) descriptors, W: (512, d), no bias

``W`` is a MyNN ``dense`` layer initialized with ``mygrad.nnet.initializers.glorot_normal``
(W_ij ~ N(0, 2 / (512 + d))); the initializer matters a lot for how fast training starts.

Optionally the text side learns too (the course's "try other ways to embed text"): a (d, d)
matrix T, the identity at the start, maps every caption and query embedding c,

    g(c) = c T / ||c T||        c: (N, d) unit IDF-weighted GloVe embeddings

Weights are saved as a pickle-free ``.npz`` with JSON metadata (`capstone.common.archive`).
"""

from __future__ import annotations

import os
from typing import Any

import mygrad as mg
import numpy as np
from mygrad.nnet.initializers import glorot_normal
from mygrad.operation_base import Operation
from mynn.layers.dense import dense

from capstone.common.archive import ArchiveError, load_archive, save_archive
from capstone.common.checks import count
from capstone.common.vectors import normalize_rows, row_norms

__all__ = ["MODEL_KIND", "ImageEmbedder"]

# What a model file says it holds (`capstone.common.archive`): the module's name when the format
# was made, kept so that every saved model still loads.
MODEL_KIND = "capstone.image.model"


class UnitRows(Operation):
    """``u = x / ||x||`` row by row, as one MyGrad operation (forward and backward together).

    With ``n = ||x||`` (per row), ``du/dx = (I - u u^T) / n``, so the gradient is

        dL/dx = (dL/du - u <dL/du, u>) / n

    One fused operation instead of four (square, sum, sqrt, divide) saves MyGrad's per-node
    bookkeeping on every training step; `tests/embeddings/test_image.py` checks it against the
    composition.
    """

    def __call__(self, x: mg.Tensor) -> np.ndarray:
        self.variables = (x,)
        self.norm = row_norms(x.data)
        # A zero row (a zero descriptor) has no direction: it stays zero, with zero gradient,
        # instead of 0 / 0 = NaN spreading through the weights.
        self.zero = self.norm == 0
        if self.zero.any():
            self.norm = np.where(self.zero, 1, self.norm)
        self.unit = x.data / self.norm
        return self.unit

    def backward_var(self, grad: np.ndarray, index: int, **kwargs) -> np.ndarray:
        along = np.einsum("nd,nd->n", grad, self.unit)[:, None]
        dx = (grad - self.unit * along) / self.norm
        return np.where(self.zero, 0, dx) if self.zero.any() else dx


def unit_rows(x: mg.Tensor) -> mg.Tensor:
    """``x / ||x||`` row by row, differentiably: (N, d) -> (N, d) (see `UnitRows`)."""
    return mg.execute_op(UnitRows, x)


class ImageEmbedder:
    """Maps (N, 512) image descriptors to (N, d) unit vectors in caption space.

    Parameters
    ----------
    d : int
        Output dimension: the GloVe dimension (200 for the course files, 50 for the demo).
    d_in : int, optional (default=512)
        Descriptor dimension.
    seed : int, optional
        Seeds the glorot-normal initialization; None draws fresh weights.
    info : dict, optional
        Facts saved with the weights, e.g. ``{"glove": ..., "data_fingerprint": ...}``.
    text_map : bool, optional (default=False)
        Also learn the text side: a (d, d) matrix T, the identity at first, applied to every
        caption and query embedding (`text`, `embed_text`).

    Examples
    --------
    >>> import numpy as np
    >>> model = ImageEmbedder(d=50, seed=0)
    >>> out = model(np.ones((3, 512), dtype=np.float32))
    >>> out.shape, np.allclose(np.linalg.norm(out.data, axis=1), 1)
    ((3, 50), True)
    """

    def __init__(
        self,
        d: int,
        *,
        d_in: int = 512,
        seed: int | None = None,
        info=None,
        text_map: bool = False,
    ):
        d, d_in = count("d", d), count("d_in", d_in)
        # glorot_normal draws from NumPy's global generator: seed it for this call only.
        state = np.random.get_state()  # noqa: NPY002
        try:
            if seed is not None:
                np.random.seed(seed)  # noqa: NPY002
            self.dense = dense(d_in, d, weight_initializer=glorot_normal, bias=False)
        finally:
            if seed is not None:
                np.random.set_state(state)  # noqa: NPY002
        self.info: dict[str, Any] = dict(info or {})
        self.text_map = mg.Tensor(np.eye(d, dtype=np.float32)) if text_map else None

    @property
    def weight(self) -> mg.Tensor:
        """W, shape (d_in, d)."""
        return self.dense.weight

    @property
    def named_parameters(self) -> dict[str, mg.Tensor]:
        """The learned tensors by the names they are saved under: W, and T if learned."""
        named = {"weight": self.weight}
        if self.text_map is not None:
            named["text_map"] = self.text_map
        return named

    @property
    def parameters(self) -> tuple[mg.Tensor, ...]:
        return tuple(self.named_parameters.values())

    @property
    def d(self) -> int:
        return self.weight.shape[1]

    @property
    def d_in(self) -> int:
        return self.weight.shape[0]

    def __call__(self, descriptors) -> mg.Tensor:
        """Differentiable forward pass: (N, d_in) -> (N, d) unit rows."""
        return unit_rows(self.dense(descriptors))

    def embed(self, descriptors: np.ndarray) -> np.ndarray:
        """Embed without building a graph: (N, d_in) -> (N, d) float32 unit rows.

        `capstone.course_math.image_embedding` of every row, in one product.
        """
        x = np.asarray(descriptors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.d_in:
            raise ValueError(f"descriptors must have shape (N, {self.d_in}), got {x.shape}")
        return normalize_rows(x @ self.weight.data)

    def text(self, captions: np.ndarray) -> mg.Tensor | np.ndarray:
        """Differentiable text side: (N, d) unit caption embeddings -> (N, d) unit rows.

        Without a text map the embeddings are used as they are (constants).
        """
        if self.text_map is None:
            return captions
        return unit_rows(mg.matmul(captions, self.text_map))

    def embed_text(self, vectors: np.ndarray) -> np.ndarray:
        """`text` without a graph, for one (d,) vector or (N, d) rows, as float32."""
        x = np.asarray(vectors, dtype=np.float32)
        if x.shape[-1:] != (self.d,):
            raise ValueError(f"text vectors must have shape (..., {self.d}), got {x.shape}")
        return x if self.text_map is None else normalize_rows(x @ self.text_map.data)

    def weight_problem(self) -> str | None:
        """Why these weights cannot embed anything (NaN/inf, or W all zero), or None."""
        for name, p in self.named_parameters.items():
            if not np.isfinite(p.data).all():
                return f"its {name} holds NaN or infinity (did training diverge?)"
        if not self.weight.data.any():
            return "its weight is all zero: every image would embed to nothing"
        return None

    def save(self, path: str | os.PathLike, *, overwrite: bool = False):
        """Save W and `info` to ``path`` (``.npz``), atomically.

        Raises
        ------
        FileExistsError
            If ``path`` exists and ``overwrite`` is False.
        ValueError
            If the weights hold NaN or infinity, or W is all zero (`weight_problem`).
        """
        problem = self.weight_problem()
        if problem:
            raise ValueError(f"refusing to save {path}: {problem}")
        meta = {**self.info, "d": self.d, "d_in": self.d_in}
        arrays = {name: p.data for name, p in self.named_parameters.items()}
        return save_archive(path, arrays, meta, kind=MODEL_KIND, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, d: int | None = None) -> ImageEmbedder:
        """Load weights saved by `save`.

        Parameters
        ----------
        path : path-like
        d : int, optional
            The output dimension the caller needs (its GloVe dimension); a model of another
            dimension is an error.

        Raises
        ------
        FileNotFoundError, capstone.common.archive.ArchiveError
            Missing, corrupt, or not a model file, weights of the wrong shape, or weights that
            cannot embed anything (`weight_problem`).
        """
        arrays, meta = load_archive(path, kind=MODEL_KIND, required=("weight",))
        weight = arrays["weight"]
        expected = (meta.get("d_in"), meta.get("d"))
        if weight.ndim != 2 or weight.shape != expected or weight.dtype.kind != "f":
            raise ArchiveError(
                f"{path}: weight has shape {weight.shape} and dtype {weight.dtype}, "
                f"its metadata says {expected}, float"
            )
        d_out = weight.shape[1]
        if d is not None and d_out != d:
            raise ArchiveError(
                f"{path}: the model embeds into {weight.shape[1]} dimensions, but the word "
                f"vectors in use have {d} (was it trained with other GloVe vectors? "
                f"it records glove={meta.get('glove')!r})"
            )
        text_map = arrays.get("text_map")
        if text_map is not None and (
            text_map.shape != (d_out, d_out) or text_map.dtype.kind != "f"
        ):
            raise ArchiveError(
                f"{path}: text_map has shape {text_map.shape} and dtype {text_map.dtype}, "
                f"expected ({d_out}, {d_out}), float"
            )
        info = {k: v for k, v in meta.items() if k not in ("d", "d_in", "kind", "format_version")}
        model = cls(d_out, d_in=weight.shape[0], seed=0, info=info, text_map=text_map is not None)
        for name, p in model.named_parameters.items():
            p.data[...] = arrays[name]
        problem = model.weight_problem()
        if problem:
            raise ArchiveError(f"{path}: {problem}")
        return model
