"""The argument checks every module makes, in one place, with one wording.

>>> count("k", 3)
3
>>> count("k", 0)
Traceback (most recent call last):
    ...
ValueError: `k` must be a positive integer, got 0
>>> in_range("margin", float("nan"), 0, float("inf"), low_open=False)
Traceback (most recent call last):
    ...
ValueError: `margin` must lie in [0, inf), got nan
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["count", "in_range"]


def count(name: str, value, *, least: int = 1) -> int:
    """``value`` as an ``int`` of at least ``least``; a bool, a float or a string is an error.

    Raises
    ------
    ValueError
        ```name` must be a positive integer, got 0`` (or non-negative, for ``least=0``).
    """
    what = {1: "a positive integer", 0: "a non-negative integer"}.get(
        least, f"an integer of at least {least}"
    )
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"`{name}` must be {what}, got {value!r}")
    return int(value)


def in_range(
    name: str,
    value,
    low: float,
    high: float,
    *,
    low_open: bool = True,
    high_open: bool = True,
) -> float:
    """``value`` as a finite ``float`` inside the interval from ``low`` to ``high``.

    Open ends by default, ``(low, high)``; ``low_open=False`` admits ``low`` itself, and so on.

    Raises
    ------
    ValueError
        ```name` must lie in (0, 1), got 1.5``; NaN, infinity and non-numbers are refused.
    """
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    ok = (
        not isinstance(value, bool)
        and math.isfinite(x)
        and (low < x if low_open else low <= x)
        and (x < high if high_open else x <= high)
    )
    if not ok:
        raise ValueError(f"`{name}` must lie in {interval}, got {value!r}")
    return x
