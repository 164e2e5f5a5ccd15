"""Training recipes: the course's sampled triples, and in-batch VSE0 / VSE++, as settings.

`TrainConfig` holds every hyperparameter; a field left at None takes its recipe's value from
`RECIPES`, and every value is checked here, before any data loads, so a bad flag or argument
fails at once with its name. `capstone.training.train` runs a config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from capstone.common.checks import count, in_range
from capstone.training.optimizers import OPTIMIZERS

__all__ = ["DEFAULT_RECIPE", "RECIPES", "SGD_MOMENTUM", "TrainConfig"]

_IN_BATCH = dict(  # what vse0 and vse++ share
    optimizer="adam",
    learning_rate=1e-3,
    margin=0.2,
    batch_size=128,
    both_directions=True,
    text_map=True,
    select_images=1000,
)
#: Each recipe's settings; a `TrainConfig` field left at None takes its recipe's value.
#: "course" is the assignment's baseline, reproduced bit for bit; the others are measured in
#: the README ("Training recipes").
RECIPES: dict[str, dict] = {
    "course": dict(
        optimizer="sgd",
        learning_rate=1e-3,
        margin=0.25,
        batch_size=32,
        both_directions=False,
        warmup_epochs=0,
        text_map=False,
        select_images=0,
    ),
    "vse0": {**_IN_BATCH, "warmup_epochs": 0},
    "vse++": {**_IN_BATCH, "warmup_epochs": 1},
}
DEFAULT_RECIPE = "vse++"
SGD_MOMENTUM = 0.9  # the course's, for SGD in any recipe


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters. ``recipe`` picks the loss; fields left at None take the recipe's values.

    Attributes
    ----------
    recipe : {"course", "vse0", "vse++"}
        ``"course"``: the course's sampled triples, one confusor a caption (random or hard)
        and SGD, exactly as the assignment sets it. ``"vse0"``: every other image of the batch
        is a confusor, mean hinge over all of them. ``"vse++"``: the same triples, the hinge of
        the hardest confusor per caption (max violation) after ``warmup_epochs`` of vse0.
        See `capstone.training.losses`. Default: ``DEFAULT_RECIPE``, the best measured.
    epochs : int
        Passes over all training captions.
    batch_size : int
        Triples (course) or captions (in-batch recipes) per step.
    optimizer : {"sgd", "adam"}
        MyNN's SGD with momentum, or Adam.
    learning_rate : float
    momentum : float
        SGD only (default 0.9, the course's).
    margin : float
        Of the margin ranking loss.
    hard_fraction : float
        Course recipe: fraction of triples with a hard confusor (0: all random, 1: all hard).
    n_candidates : int
        Course recipe: candidate images per hard confusor.
    both_directions : bool
        In-batch recipes: add the image -> caption loss.
    warmup_epochs : int
        vse++: epochs of the vse0 loss first (max violation alone can stall at the start).
    text_map : bool
        Also learn a (d, d) map of the text side (`capstone.embeddings.image.ImageEmbedder`).
    select_images : int
        Training images held out of training to pick the best epoch by their retrieval
        (R@1 + R@5 + R@10), at most a tenth of the training images; 0: keep the last epoch.
    patience : int or None
        Stop after this many epochs without a better selection score (needs select_images).
    val_fraction : float
        Fraction of images held out for validation (course: 1/5).
    seed : int
        Seeds the split, the initial weights, and every epoch's confusors and order.
    """

    recipe: str = DEFAULT_RECIPE
    epochs: int = 10
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    momentum: float | None = None
    margin: float | None = None
    hard_fraction: float = 0.0
    n_candidates: int = 5
    both_directions: bool | None = None
    warmup_epochs: int | None = None
    text_map: bool | None = None
    select_images: int | None = None
    patience: int | None = None
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"`recipe` must be one of {tuple(RECIPES)}, got {self.recipe!r}")
        for name, value in RECIPES[self.recipe].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.optimizer == "sgd" and self.momentum is None:
            object.__setattr__(self, "momentum", SGD_MOMENTUM)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.momentum is not None and self.optimizer != "sgd":
            raise ValueError(f"`momentum` is for SGD only, got {self.momentum!r} with Adam")
        for name in ("epochs", "batch_size", "n_candidates"):
            count(name, getattr(self, name))
        if self.patience is not None:
            count("patience", self.patience)
        for name in ("seed", "warmup_epochs", "select_images"):
            count(name, getattr(self, name), least=0)
        in_range("learning_rate", self.learning_rate, 0, math.inf)
        if self.momentum is not None:
            in_range("momentum", self.momentum, 0, 1, low_open=False)
        in_range("margin", self.margin, 0, math.inf, low_open=False)
        in_range("hard_fraction", self.hard_fraction, 0, 1, low_open=False, high_open=False)
        in_range("val_fraction", self.val_fraction, 0, 1)
        for name in ("both_directions", "text_map"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be True or False, got {getattr(self, name)!r}")
        if self.recipe == "course" and self.both_directions:
            raise ValueError(
                "`both_directions` is for the in-batch recipes (vse0, vse++), not the course's "
                "sampled triples"
            )
        if self.recipe != "vse++" and self.warmup_epochs:
            raise ValueError(
                f"`warmup_epochs` is for vse++ (epochs of the vse0 loss first), not {self.recipe}"
            )
        if self.recipe != "course" and self.batch_size < 2:
            raise ValueError(
                f"`batch_size` must be 2 or more for {self.recipe}: the other images of a batch "
                f"are its confusors, got {self.batch_size}"
            )
        if self.recipe != "course" and self.hard_fraction:
            raise ValueError(
                f"`hard_fraction` is for the course recipe: {self.recipe} already uses every "
                f"image of the batch as a confusor, got {self.hard_fraction!r}"
            )
        if self.patience is not None and not self.select_images:
            raise ValueError("`patience` needs `select_images` > 0 to tell the best epoch")

    def violation(self, epoch: int) -> str:
        """The in-batch loss of ``epoch`` (1-based): "sum", or "max" for vse++ after warm-up."""
        return "max" if self.recipe == "vse++" and epoch > self.warmup_epochs else "sum"
