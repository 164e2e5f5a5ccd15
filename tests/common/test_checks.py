"""Tests of `capstone.common.checks`: the one wording of every argument check."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

from capstone.common.checks import UnknownKey, count, in_range, instance


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(1)])
def test_count_accepts_integers(value):
    assert count("k", value) == int(value) and type(count("k", value)) is int


@pytest.mark.parametrize("value", [0, -1, 1.0, 2.5, True, "3", None, math.nan])
def test_count_refuses_everything_else(value):
    with pytest.raises(ValueError, match=r"^`k` must be a positive integer, got ") as info:
        count("k", value)
    assert repr(value) in str(info.value)


def test_count_with_other_least():
    assert count("seed", 0, least=0) == 0
    with pytest.raises(ValueError, match=r"`seed` must be a non-negative integer, got -1"):
        count("seed", -1, least=0)
    with pytest.raises(ValueError, match=r"`n` must be an integer of at least 2, got 1"):
        count("n", 1, least=2)


@pytest.mark.parametrize("value", [0, 101, 10**12, 50.0, "50", True])
def test_count_with_a_bound_says_the_range(value):
    assert count("k", 100, least=1, most=100) == 100 and count("k", 1, least=1, most=100) == 1
    shown = f"{value:,}" if type(value) is int else repr(value)  # big counts with commas
    with pytest.raises(ValueError) as info:
        count("k", value, least=1, most=100, why=" (the page's limit)")
    said = f"`k` must be a whole number from 1 to 100 (the page's limit), got {shown}"
    assert str(info.value) == said


@pytest.mark.parametrize(
    ("value", "low_open", "high_open", "ok"),
    [
        (0.0, True, True, False),
        (0.0, False, True, True),
        (1.0, True, True, False),
        (1.0, True, False, True),
        (0.5, True, True, True),
        (math.nan, False, False, False),
        (math.inf, False, False, False),
        (True, False, False, False),
        ("0.5", True, True, True),
        ("x", True, True, False),
        (None, True, True, False),
    ],
)
def test_in_range(value, low_open, high_open, ok):
    if ok:
        assert in_range("p", value, 0, 1, low_open=low_open, high_open=high_open) == float(value)
    else:
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        with pytest.raises(ValueError, match=rf"^`p` must lie in {re.escape(interval)}, got "):
            in_range("p", value, 0, 1, low_open=low_open, high_open=high_open)


class Config:
    pass


def test_instance_returns_what_it_accepts():
    config = Config()
    assert instance("config", config, Config) is config
    assert instance("run_dir", None, (str, type(None))) is None


@pytest.mark.parametrize(
    ("value", "expected", "message"),
    [
        (None, Config, "`x` must be a Config, got None"),
        ({"epochs": 1}, Config, "`x` must be a Config, got dict {'epochs': 1}"),
        (3, (str, os.PathLike, type(None)), "`x` must be a str, os.PathLike or None, got int 3"),
        ([1.0], np.ndarray, "`x` must be a numpy.ndarray, got list [1.0]"),
        ("a" * 200, int, "`x` must be an int, got str 'aaaaaaaaaaaa...aaaaaaaaaaaaa'"),
        (Config(), int, "`x` must be an int, got Config"),  # no repr of another class's object
        (3, (type(None), str), "`x` must be None or str, got int 3"),  # no article before None
    ],
)
def test_instance_names_the_parameter_the_type_and_what_was_given(value, expected, message):
    with pytest.raises(TypeError) as refused:
        instance("x", value, expected)
    assert str(refused.value) == message


def test_instance_appends_a_hint():
    with pytest.raises(TypeError, match=r"^`x` must be a Config, got None: make one first$"):
        instance("x", None, Config, hint="make one first")


def test_unknown_key_reads_as_its_message_and_is_a_key_error():
    assert str(UnknownKey("unknown image id 7")) == "unknown image id 7"
    assert str(UnknownKey()) == ""
    assert isinstance(UnknownKey("x"), KeyError)
