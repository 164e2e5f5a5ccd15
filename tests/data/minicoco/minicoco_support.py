"""What the tests of `capstone.data.minicoco` share: the dataset they read, and what a caption
names."""

from capstone.data import minicoco
from capstone.text.tokens import tokenize

N_IMAGES, SEED = 1_000, 3  # the dataset that `generated` (conftest.py) writes, once


def mentions(caption: str, category: str) -> bool:
    """Whether ``caption`` uses one of the words for ``category`` (`minicoco.mention_forms`)."""
    text = " " + " ".join(tokenize(caption)) + " "
    return any(f" {' '.join(tokenize(form))} " in text for form in minicoco.mention_forms(category))
