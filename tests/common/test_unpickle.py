"""The pickle boundary: only the listed globals resolve, to the objects the caller gave."""

from __future__ import annotations

import collections
import io
import os
import pickle

import pytest

from capstone.common.unpickle import RestrictedUnpickler, UnsafePickle


def _load(data: bytes, allowed, purpose="the test's file"):
    return RestrictedUnpickler(io.BytesIO(data), allowed, purpose).load()


def test_plain_data_needs_no_global():
    value = {"a": [1, 2.5, None, True], "b": ("x", b"y")}
    assert _load(pickle.dumps(value), {}) == value


def test_an_allowed_global_resolves_to_the_callers_object():
    stand_in = object()
    data = pickle.dumps(collections.OrderedDict)
    assert _load(data, {("collections", "OrderedDict"): stand_in}) is stand_in


class _Runs:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_global_outside_the_list_is_refused_before_anything_runs():
    allowed = {("collections", "OrderedDict"): collections.OrderedDict}
    with pytest.raises(UnsafePickle) as refused:
        _load(pickle.dumps(_Runs()), allowed, purpose="a ResNet-18 state dict")
    assert str(refused.value) == (
        f"refusing to load: the pickle asks for the global {os.system.__module__}.system, which "
        "a ResNet-18 state dict never needs (a pickle can run arbitrary code)"
    )
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_the_refusal_is_a_value_error_and_subclasses_may_narrow_it():
    assert issubclass(UnsafePickle, ValueError)

    class Narrow(UnsafePickle):
        pass

    class NarrowUnpickler(RestrictedUnpickler):
        unsafe = Narrow

    with pytest.raises(Narrow, match=r"builtins\.print"):
        NarrowUnpickler(io.BytesIO(pickle.dumps(print)), {}, "x").load()
