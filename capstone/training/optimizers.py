"""MyNN's optimizers by name, and their state as named arrays for checkpoints.

- ``"sgd"``: ``mynn.optimizers.sgd.SGD`` with momentum mu: ``v = mu v - lr g;  w = w + v``.
- ``"adam"``: ``mynn.optimizers.adam.Adam`` (Kingma and Ba): moving averages m of g and v of
  g^2, bias-corrected by the step count t, ``w = w - lr m_hat / (sqrt(v_hat) + eps)``.

A resumed run must continue exactly as the uninterrupted one, so the state (momenta, Adam's
m, v and t) is saved with the weights, one array per (slot, parameter):
``"optimizer.momentum.weight"``, ``"optimizer.m.text_map"``, ...
"""

from __future__ import annotations

import numpy as np
from mynn.optimizers.adam import Adam
from mynn.optimizers.sgd import SGD

__all__ = ["OPTIMIZERS", "load_optimizer_state", "make_optimizer", "optimizer_state"]

OPTIMIZERS = ("sgd", "adam")


def make_optimizer(name: str, params, *, learning_rate: float, momentum: float | None = None):
    """A MyNN optimizer over ``params``: ``"sgd"`` (with ``momentum``) or ``"adam"``."""
    if name == "sgd":
        return SGD(params, learning_rate=learning_rate, momentum=momentum or 0.0)
    if name == "adam":
        return Adam(params, learning_rate=learning_rate)
    raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}, got {name!r}")


def _slots(optimizer) -> dict[str, list[np.ndarray]]:
    if isinstance(optimizer, Adam):
        return {"m": optimizer.m, "v": optimizer.v}
    # MyNN's SGD keeps no momenta when momentum is 0.
    return {"momentum": optimizer.param_moments} if optimizer.param_moments else {}


def optimizer_state(optimizer, names: list[str]) -> tuple[dict[str, np.ndarray], dict]:
    """The optimizer's state as ``({"optimizer.<slot>.<name>": array}, {"step": t})``.

    ``names`` names the optimizer's parameters, in order.
    """
    arrays = {
        f"optimizer.{slot}.{name}": array
        for slot, values in _slots(optimizer).items()
        for name, array in zip(names, values, strict=True)
    }
    return arrays, {"step": getattr(optimizer, "t", 0)}


def load_optimizer_state(optimizer, names: list[str], arrays: dict, meta: dict, source) -> None:
    """Put back what `optimizer_state` saved; ``source`` names the file in errors."""
    for slot, values in _slots(optimizer).items():
        for i, name in enumerate(names):
            key = f"optimizer.{slot}.{name}"
            if key not in arrays or arrays[key].shape != values[i].shape:
                raise ValueError(f"{source}: the optimizer state {key} is missing or misshapen")
            values[i][...] = arrays[key]
    if isinstance(optimizer, Adam):
        # Adam's bias correction depends on the step count: without it, no exact resume.
        if "step" not in meta:
            raise ValueError(f"{source}: the optimizer state has no step count")
        optimizer.t = int(meta["step"])
