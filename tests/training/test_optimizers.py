"""Tests of `capstone.training.optimizers`: MyNN's optimizers by name and their saved state."""

from __future__ import annotations

import mygrad as mg
import numpy as np
import pytest
from mynn.optimizers.adam import Adam
from mynn.optimizers.sgd import SGD

from capstone.training.optimizers import load_optimizer_state, make_optimizer, optimizer_state


def quadratic_steps(optimizer, params, n):
    """n steps on sum(p^2 * [1, 2, ...]): every parameter gets a gradient."""
    for _ in range(n):
        loss = sum(mg.sum(p**2 * np.arange(1, p.size + 1).reshape(p.shape)) for p in params)
        loss.backward()
        optimizer.step()


def params():
    rng = np.random.default_rng(0)
    return [mg.tensor(rng.normal(size=(3, 2))), mg.tensor(rng.normal(size=(2, 2)))]


@pytest.mark.parametrize(("name", "cls"), [("sgd", SGD), ("adam", Adam)])
def test_make_optimizer(name, cls):
    # 0.05: neither MyNN's default for SGD (0.1) nor for Adam (0.001)
    momentum = 0.9 if name == "sgd" else None
    opt = make_optimizer(name, params(), learning_rate=0.05, momentum=momentum)
    assert isinstance(opt, cls) and opt.learning_rate == 0.05


def test_sgd_without_momentum_keeps_no_state():
    opt = make_optimizer("sgd", params(), learning_rate=0.1, momentum=0.0)
    assert optimizer_state(opt, ["a", "b"]) == ({}, {"step": 0})


def test_unknown_optimizer():
    with pytest.raises(ValueError, match=r"`optimizer` must be one of \('sgd', 'adam'\), got 'x'"):
        make_optimizer("x", params(), learning_rate=0.1)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_state_round_trip_continues_exactly(name):
    momentum = 0.9 if name == "sgd" else None
    straight_params = params()
    straight = make_optimizer(name, straight_params, learning_rate=0.05, momentum=momentum)
    quadratic_steps(straight, straight_params, 5)

    first_params = params()
    first = make_optimizer(name, first_params, learning_rate=0.05, momentum=momentum)
    quadratic_steps(first, first_params, 2)
    arrays, meta = optimizer_state(first, ["w", "t"])
    assert meta["step"] == (2 if name == "adam" else 0)

    # a fresh optimizer over copies of the weights, given the saved state
    second_params = [mg.tensor(p.data.copy()) for p in first_params]
    second = make_optimizer(name, second_params, learning_rate=0.05, momentum=momentum)
    load_optimizer_state(second, ["w", "t"], arrays, meta, "ckpt.npz")
    quadratic_steps(second, second_params, 3)
    for a, b in zip(second_params, straight_params, strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_missing_state_is_an_error_naming_the_file():
    opt = make_optimizer("adam", params(), learning_rate=0.1)
    arrays, meta = optimizer_state(opt, ["w", "t"])
    del arrays["optimizer.v.t"]
    with pytest.raises(
        ValueError, match=r"ckpt\.npz: the optimizer state optimizer\.v\.t is missing"
    ):
        load_optimizer_state(opt, ["w", "t"], arrays, meta, "ckpt.npz")


def test_adam_state_without_its_step_is_an_error_naming_the_file():
    opt = make_optimizer("adam", params(), learning_rate=0.1)
    arrays, _ = optimizer_state(opt, ["w", "t"])
    with pytest.raises(ValueError, match=r"ckpt\.npz: the optimizer state has no step count"):
        load_optimizer_state(opt, ["w", "t"], arrays, {}, "ckpt.npz")


@pytest.mark.parametrize("names", [["w"], ["w", "t", "extra"]])
def test_state_needs_one_name_per_parameter(names):
    # a name too few would silently drop a parameter's state from the checkpoint
    opt = make_optimizer("sgd", params(), learning_rate=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="zip"):
        optimizer_state(opt, names)
