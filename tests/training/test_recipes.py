"""Tests of `capstone.training.recipes`: each recipe's settings and every check of `TrainConfig`."""

from __future__ import annotations

import math

import pytest

from capstone.training.recipes import DEFAULT_RECIPE, RECIPES, TrainConfig

# ----------------------------------------------------------------------------------- TrainConfig


def test_course_recipe_is_the_course_recommendation():
    c = TrainConfig(recipe="course")
    assert c.optimizer == "sgd"
    assert (c.learning_rate, c.momentum, c.margin, c.batch_size, c.val_fraction) == (
        1e-3,
        0.9,
        0.25,
        32,
        0.2,
    )
    assert c.hard_fraction == 0.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", -3),
        ("epochs", 2.0),
        ("epochs", True),
        ("batch_size", 1.5),
        ("batch_size", 0),
        ("n_candidates", 0),
        ("n_candidates", "5"),
        ("momentum", 1),
        ("momentum", -0.1),
        ("momentum", math.nan),
        ("learning_rate", -1),
        ("learning_rate", 0),
        ("learning_rate", math.nan),
        ("learning_rate", math.inf),
        ("margin", -0.25),
        ("margin", math.nan),
        ("margin", math.inf),
        ("hard_fraction", 2),
        ("hard_fraction", -0.5),
        ("hard_fraction", math.nan),
        ("val_fraction", 0),
        ("val_fraction", 1),
        ("seed", -1),
        ("seed", 1.0),
        ("seed", False),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=rf"`{field}` ") as info:
        TrainConfig(recipe="course", **{field: value})
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"momentum": 0.0},
        {"margin": 0.0},
        {"hard_fraction": 1.0},
        {"hard_fraction": 0},
        {"epochs": 1, "batch_size": 1, "n_candidates": 1, "seed": 0},
        {"learning_rate": 10},
    ],
)
def test_config_accepts_edge_values(kwargs):
    config = TrainConfig(recipe="course", **kwargs)
    assert all(getattr(config, k) == v for k, v in kwargs.items())


# ------------------------------------------------------------------------------------- recipes


def test_default_recipe_is_vse_plus_plus_with_adam():
    c = TrainConfig()
    assert c.recipe == DEFAULT_RECIPE == "vse++"
    assert {k: getattr(c, k) for k in RECIPES["vse++"]} == RECIPES["vse++"]
    assert c.momentum is None  # Adam has none
    assert c.violation(1) == "sum" and c.violation(2) == "max"  # one warm-up epoch
    assert TrainConfig(recipe="vse0").violation(5) == "sum"


def test_recipe_values_can_be_overridden():
    c = TrainConfig(recipe="vse0", optimizer="sgd", learning_rate=0.1, batch_size=64)
    assert (c.optimizer, c.learning_rate, c.momentum, c.batch_size) == ("sgd", 0.1, 0.9, 64)
    assert TrainConfig(recipe="course", optimizer="adam").momentum is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"recipe": "vse+"}, r"`recipe` must be one of \('course', 'vse0', 'vse\+\+'\)"),
        ({"optimizer": "rmsprop"}, r"`optimizer` must be one of \('sgd', 'adam'\)"),
        ({"momentum": 0.5}, r"`momentum` is for SGD only"),
        ({"hard_fraction": 0.5}, r"`hard_fraction` is for the course recipe"),
        ({"recipe": "course", "both_directions": True}, r"`both_directions` is for the in-batch"),
        ({"recipe": "course", "warmup_epochs": 1}, r"`warmup_epochs` is for vse\+\+.*not course"),
        ({"recipe": "vse0", "warmup_epochs": 1}, r"`warmup_epochs` is for vse\+\+.*not vse0"),
        ({"batch_size": 1}, r"`batch_size` must be 2 or more for vse\+\+: the other images"),
        ({"select_images": 0, "patience": 2}, r"`patience` needs `select_images` > 0"),
        ({"patience": 0}, r"`patience` must be a positive integer, got 0"),
        ({"warmup_epochs": -1}, r"`warmup_epochs` must be a non-negative integer, got -1"),
        ({"select_images": 1.5}, r"`select_images` must be a non-negative integer, got 1.5"),
        ({"text_map": 1}, r"`text_map` must be True or False, got 1"),
    ],
)
def test_config_rejects_bad_recipe_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)
