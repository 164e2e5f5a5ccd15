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
>>> instance("data", None, dict)
Traceback (most recent call last):
    ...
TypeError: `data` must be a dict, got None
"""

from __future__ import annotations

import math
import reprlib

import numpy as np

__all__ = ["UnknownKey", "count", "in_range", "instance"]


class UnknownKey(KeyError):
    """A key the user gave that the data does not hold: an image id, a word without a vector.

    A `KeyError` (a lookup failed: ``except KeyError`` still catches it) whose message is
    what the user reads: ``str()`` gives the message itself, not the quoted repr a KeyError
    prints. The command line turns it into ``error: ...`` and exit status 2, while a bare
    KeyError stays what it is, a bug, with its traceback.

    >>> str(UnknownKey("unknown image id 7"))
    'unknown image id 7'
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _type_names(expected: type | tuple[type, ...]) -> str:
    """The expected types as a message says them: "a Dataset", "a str, os.PathLike or None"."""
    types = expected if isinstance(expected, tuple) else (expected,)
    # a built-in or the package's own class by its name; os's and NumPy's with their module
    names = [
        "None" if t is type(None)
        else f"{t.__module__}.{t.__name__}" if t.__module__ in ("os", "numpy")
        else t.__name__
        for t in types
    ]  # fmt: skip
    article = "" if names[0] == "None" else "an " if names[0][0] in "aeiouAEIOU" else "a "
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    return article + listed


def instance(name: str, value, expected: type | tuple[type, ...], *, hint: str = ""):
    """``value`` if it is an instance of ``expected``; else a TypeError naming all three.

    The check every public function makes of its arguments' types, so a wrong argument fails
    at once with its name rather than as an AttributeError deep inside.

    Parameters
    ----------
    name : str
        The parameter, as the message names it.
    value : object
    expected : type or tuple of types
        As for `isinstance`; ``type(None)`` admits None.
    hint : str
        Appended to the message: what to pass instead, e.g. "pass `dataset.data`".

    Raises
    ------
    TypeError
        ```config` must be a TrainConfig, got dict {'epochs': 1}: TrainConfig(**config) makes
        one``; a built-in value is shown (`reprlib`: cut short), another only by its type.
    """
    if isinstance(value, expected):
        return value
    shown = "None" if value is None else type(value).__name__
    if value is not None and type(value).__module__ == "builtins":
        shown += f" {reprlib.repr(value)}"  # cut short; another class's repr may be huge
    raise TypeError(
        f"`{name}` must be {_type_names(expected)}, got {shown}" + (f": {hint}" if hint else "")
    )


def count(name: str, value, *, least: int = 1, most: int | None = None, why: str = "") -> int:
    """``value`` as an ``int`` from ``least`` to ``most``; a bool, a float or a string is an error.

    The one integer check: every count, size and seed of the package, and the web app's query
    numbers once parsed.

    Parameters
    ----------
    name : str
        The parameter, as the message names it.
    value : object
    least : int, optional (default=1)
    most : int, optional
        No upper bound when None.
    why : str, optional
        Said after the bound, e.g. " (COCO has 414,113)".

    Raises
    ------
    ValueError
        ```name` must be a positive integer, got 0`` (or non-negative, for ``least=0``); with
        ``most``, ```name` must be a whole number from 1 to 100, got 101``.

    Examples
    --------
    >>> count("n_captions", 10**12, least=100, most=10**6, why=" (COCO has 414,113)")
    Traceback (most recent call last):
        ...
    ValueError: `n_captions` must be a whole number from 100 to 1,000,000 (COCO has 414,113), got 1,000,000,000,000
    """  # noqa: E501
    if most is not None:
        what = f"a whole number from {least:,} to {most:,}"
    else:
        what = {1: "a positive integer", 0: "a non-negative integer"}.get(
            least, f"an integer of at least {least:,}"
        )
    is_int = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not is_int or value < least or (most is not None and value > most):
        shown = f"{value:,}" if is_int else repr(value)
        raise ValueError(f"`{name}` must be {what}{why}, got {shown}")
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
