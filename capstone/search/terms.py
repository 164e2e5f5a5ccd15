"""Query terms: ``"2:dog + beach - sand"`` as weighted texts, for combined queries.

A query is texts joined by ``+`` and ``-`` (each with a space before it, so "snow-covered" stays
one word); a text may start with a weight ``w:``. The query vector is

    q = normalize(sum_i w_i * embed(text_i))        (``-`` negates the weight)

`SearchEngine.terms_vector` computes it; a plain query is one term of weight 1.
"""

from __future__ import annotations

import math
import re

__all__ = ["MAX_TERMS", "MAX_WEIGHT", "parse_terms"]

MAX_TERMS = 8
MAX_WEIGHT = 10.0

# An operator: "+" or "-" at the start or after whitespace, then whitespace or the term.
_OPERATOR = re.compile(r"(?:^|\s)([+-])(?=\s|\w|\d)")
_WEIGHT = re.compile(r"^\s*((?:\d+(?:\.\d*)?|\.\d+))\s*:\s*(.*)$", re.DOTALL)


def parse_terms(query: str) -> list[tuple[float, str]]:
    """The weighted texts of a query.

    Parameters
    ----------
    query : str
        Texts joined by `` + `` or `` - ``, each optionally ``weight:text``.

    Returns
    -------
    list[tuple[float, str]]
        (weight, text) per term, in order; ``-`` makes the weight negative.

    Raises
    ------
    ValueError
        For an empty query or term, a weight that is not a number in (0, `MAX_WEIGHT`], or
        more than `MAX_TERMS` terms; the message names the term.

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
        terms.append((-weight if sign == "-" else weight, text))
    return terms
