"""The query language of every front end: ``"2:dog + beach - sand"``, and in the command line
and the Python API a photo term too: ``"2:golden retriever" + ./pool.jpg - fruit``.

A query is terms joined by ``+`` and ``-`` (each with a space before it, so "snow-covered"
stays one word); a term may start with a weight ``w:`` in (0, `MAX_WEIGHT`]; a query has at
most `MAX_TERMS` terms. A term is words, or (where photos are allowed) a photo file: a term
that ends in a photo suffix (``.jpg``, ``.png``, ...) or starts with ``./``, ``../``, ``/`` or
``~/`` names a file, which must exist. The query vector is

    q = normalize(sum_i w_i * v_i)        (``-`` negates the weight)

with v_i the unit embedding of term i: of its words (`capstone.search.engine.text_vector`), or
of the photo's ResNet-18 descriptor through the model. `capstone.search.engine.query_vector`
computes it; a plain query is one term of weight 1. The web app parses with ``photos=False``:
there a path is words (a request never names a server file).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from capstone.photos.describer import PHOTO_SUFFIXES

__all__ = ["MAX_TERMS", "MAX_WEIGHT", "format_terms", "parse_terms", "photo_term"]

MAX_TERMS = 8
MAX_WEIGHT = 10.0

# An operator: "+" or "-" at the start or after whitespace, then whitespace or the term
# (a word, or a path: "-./pool.jpg", "-~/pool.jpg", "-/tmp/pool.jpg").
_OPERATOR = re.compile(r"(?:^|\s)([+-])(?=\s|\w|[./~])")
_WEIGHT = re.compile(r"^\s*((?:\d+(?:\.\d*)?|\.\d+))\s*:\s*(.*)$", re.DOTALL)
_PATH_STARTS = ("./", "../", "/", "~/")

Term = tuple[float, "str | Path"]


def photo_term(text: str) -> Path | None:
    """The photo file a term names, or None when the term is words.

    A term names a file when it ends in one of `PHOTO_SUFFIXES` (any case) or starts with
    ``./``, ``../``, ``/`` or ``~/``.

    Raises
    ------
    ValueError
        When the term names a file that does not exist, or a folder: the message names it
        (a mistyped path is never searched as words).
    """
    text = text.strip()
    if not (text.startswith(_PATH_STARTS) or Path(text).suffix.lower() in PHOTO_SUFFIXES):
        return None
    path = Path(text).expanduser()
    if path.is_dir():
        raise ValueError(f"the photo term {text!r} is a folder, expected a photo file")
    if not path.is_file():
        raise ValueError(f"the photo term {text!r}: no such file")
    return path


def parse_terms(query: str, *, photos: bool = False) -> list[Term]:
    """The weighted terms of a query.

    Parameters
    ----------
    query : str
        Terms joined by `` + `` or `` - ``, each optionally ``weight:term``.
    photos : bool, optional (default=False)
        Whether a term may be a photo file (`photo_term`); without it every term is words.

    Returns
    -------
    list[tuple[float, str | pathlib.Path]]
        (weight, text) per term, in order, with a `~pathlib.Path` for a photo term; ``-`` makes
        the weight negative.

    Raises
    ------
    ValueError
        For an empty query or term, a weight that is not a number in (0, `MAX_WEIGHT`], more
        than `MAX_TERMS` terms, or (``photos``) a path that is no file; the message names the
        term.

    Examples
    --------
    >>> parse_terms("2:dog + beach - sand")
    [(2.0, 'dog'), (1.0, 'beach'), (-1.0, 'sand')]
    >>> parse_terms("a snow-covered hill")
    [(1.0, 'a snow-covered hill')]
    """
    if not isinstance(query, str):
        raise TypeError(f"the query must be a string, not {type(query).__name__}")
    if not query.strip():
        raise ValueError("the query is empty")
    pieces = _OPERATOR.split(query)
    # pieces: [before the first operator, op, text, op, text, ...]
    signed = [("+", pieces[0]), *zip(pieces[1::2], pieces[2::2], strict=True)]
    if not signed[0][1].strip():
        signed = signed[1:]  # the query starts with an operator: "-sand" alone, "+ dog"
    if len(signed) > MAX_TERMS:
        raise ValueError(f"a query has at most {MAX_TERMS} terms, this one has {len(signed)}")
    terms = []
    for sign, piece in signed:
        weight, text = 1.0, piece.strip()
        match = _WEIGHT.match(piece)
        if match:
            weight, text = float(match.group(1)), match.group(2).strip()
            if not (0 < weight <= MAX_WEIGHT) or not math.isfinite(weight):
                raise ValueError(
                    f"the weight of {piece.strip()!r} must lie in (0, {MAX_WEIGHT:g}], "
                    f"got {match.group(1)}"
                )
        if not text:
            raise ValueError(f"the query {query!r} has an empty term (after {sign!r})")
        term = (photo_term(text) if photos else None) or text
        terms.append((-weight if sign == "-" else weight, term))
    return terms


def format_terms(terms: Sequence[Term]) -> str:
    """The query of ``terms`` (`parse_terms` reads it back): ``"2:dog + beach - sand"``.

    >>> format_terms([(2.0, "dog"), (1.0, "beach"), (-1.0, "sand")])
    '2:dog + beach - sand'
    """
    parts = []
    for i, (weight, term) in enumerate(terms):
        w = abs(weight)
        number = f"{w:g}" if float(f"{w:g}") == w else repr(w)  # short, unless that rounds
        text = term if w == 1 else f"{number}:{term}"
        sign = "-" if weight < 0 else "+"
        parts.append(text if i == 0 and sign == "+" else f"{sign} {text}")
    return " ".join(parts)
