"""Comparing a student's function with its reference on Hypothesis-drawn inputs, and the feedback.

`compare` runs both functions on inputs drawn by Hypothesis, seeded (``derandomize``): the same
submission always gets the same feedback. A failing comparison reports the *smallest* input
that fails, as Hypothesis shrinks it, with the expected and the actual result (here, an
``idf`` written with the natural log)::

    idf(captions=['', 'a'])
        expected: {'a': 0.30103}
        got:      {'a': 0.693147}

`close`, `same_floats` and `floats_close` are the ways two results count as the same; a check
(`capstone.course.tasks`) picks one.
"""

from __future__ import annotations

import math

import mygrad as mg
import numpy as np
from hypothesis import HealthCheck, Phase, given, settings

__all__ = ["TaskFailed", "close", "compare", "floats_close", "same_floats"]


class TaskFailed(Exception):
    """A task's check failed; the message is the feedback the student reads."""


_SETTINGS = settings(
    max_examples=40,
    derandomize=True,  # the same submission always gets the same feedback
    database=None,
    deadline=None,  # the task's time limit is the grader's (a child process), not Hypothesis's
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


def _shown(value) -> str:
    """A value as the feedback shows it: short, floats rounded, arrays as lists."""
    if isinstance(value, mg.Tensor):
        value = value.data
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_shown, value)) + ")"
    if isinstance(value, np.ndarray):
        value = np.round(value.astype(np.float64), 6).tolist() if value.dtype.kind == "f" \
            else value.tolist()  # fmt: skip
    elif isinstance(value, float):
        value = round(value, 6)
    elif isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_shown(v)}" for k, v in value.items()) + "}"
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 400 else text[:400] + " ..."


def _array(x) -> np.ndarray:
    return np.asarray(x.data if isinstance(x, mg.Tensor) else x, dtype=np.float64)


def close(got, expected, tol=1e-6) -> bool:
    """Same shape and ``|got - expected| <= tol + tol |expected|`` elementwise (arrays, tensors)."""
    try:
        got = _array(got)
    except (TypeError, ValueError):
        return False
    expected = _array(expected)
    return got.shape == expected.shape and bool(np.allclose(got, expected, rtol=tol, atol=tol))


def same_floats(got, expected) -> bool:
    """A dict with the same keys, each value `close` to the expected one within 1e-9."""
    return isinstance(got, dict) and got.keys() == expected.keys() and all(
        close(got[k], v, 1e-9) for k, v in expected.items()
    )


def floats_close(got, expected) -> bool:
    """A number (Python or NumPy) within 1e-9 of ``expected``, relative or absolute."""
    return isinstance(got, (int, float, np.floating, np.integer)) and math.isclose(
        float(got), expected, rel_tol=1e-9, abs_tol=1e-9
    )


def compare(name, function, reference, inputs, same=None, *, call=None, names=()):
    """Check ``function(*args) == reference(*args)`` on every ``args`` Hypothesis draws.

    Parameters
    ----------
    name : str
        The task, for the feedback.
    inputs : hypothesis strategy of tuples
    same : callable, optional
        ``same(got, expected) -> bool`` (default ``==``).
    call : callable, optional
        ``call(f, args)`` runs one function on the inputs (default ``f(*args)``); for tasks
        that mutate their inputs, it copies them first.
    names : sequence of str
        Parameter names, to show the failing input as a call.

    Raises
    ------
    TaskFailed
        With the smallest failing input (Hypothesis replays it last), expected and got.
    """
    same = same or (lambda a, b: a == b)
    call = call or (lambda f, args: f(*args))
    failures: list[tuple] = []

    @_SETTINGS
    @given(inputs)
    def run(args):
        expected = call(reference, args)
        try:
            got = call(function, args)
        except Exception as e:  # the student's bug, reported with its input
            failures.append((args, expected, f"it raised {type(e).__name__}: {e}"))
            raise
        if not same(got, expected):
            failures.append((args, expected, _shown(got)))
            raise AssertionError

    try:
        run()
    except Exception:
        if not failures:
            raise
        args, expected, got = failures[-1]
        shown = ", ".join(
            f"{n}={_shown(a)}" if n else _shown(a)
            for n, a in zip(names or [""] * len(args), args, strict=True)
        )
        raise TaskFailed(
            f"{name}({shown})\n    expected: {_shown(expected)}\n    got:      {got}"
        ) from None
