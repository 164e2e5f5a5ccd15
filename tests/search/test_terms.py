"""Tests of `capstone.search.terms`: weighted +/- query terms, against the query they were
written from."""

from __future__ import annotations

import re

import hypothesis.strategies as st
import pytest
from hypothesis import given

from capstone.search.terms import MAX_TERMS, MAX_WEIGHT, parse_terms

# Words that may hold hyphens and digits ("snow-covered", "3-4") but never a spaced operator.
WORD = st.from_regex(r"[a-z][a-z0-9]*(-[a-z0-9]+)?", fullmatch=True)
TEXT = st.lists(WORD, min_size=1, max_size=4).map(" ".join)
WEIGHT = st.one_of(st.none(), st.sampled_from([0.5, 1.0, 2.0, 2.5, 10.0]))


@given(st.lists(st.tuples(st.sampled_from("+-"), WEIGHT, TEXT), min_size=1, max_size=MAX_TERMS))
def test_parse_gives_back_the_terms_a_query_was_written_from(terms):
    parts = []
    for i, (sign, weight, text) in enumerate(terms):
        term = text if weight is None else f"{weight:g}:{text}"
        parts.append(term if i == 0 and sign == "+" else f"{sign} {term}")
    query = " ".join(parts)
    expected = [
        ((-1 if sign == "-" else 1) * (1.0 if weight is None else weight), text)
        for sign, weight, text in terms
    ]
    assert parse_terms(query) == expected


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("dog", [(1.0, "dog")]),
        ("  two dogs.  ", [(1.0, "two dogs.")]),
        ("dog +cat", [(1.0, "dog"), (1.0, "cat")]),
        ("dog -cat", [(1.0, "dog"), (-1.0, "cat")]),
        ("-sand", [(-1.0, "sand")]),
        ("2: dog", [(2.0, "dog")]),
        (".5:dog", [(0.5, "dog")]),
        ("x:dog", [(1.0, "x:dog")]),  # not a number: part of the text
        ("3-4 dogs on a snow-covered hill", [(1.0, "3-4 dogs on a snow-covered hill")]),
    ],
)
def test_examples(query, terms):
    assert parse_terms(query) == terms


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "the query is empty"),
        ("  ", "the query is empty"),
        ("dog - ", "has an empty term (after '-')"),
        ("dog + + cat", "has an empty term (after '+')"),
        ("0:dog", f"the weight of '0:dog' must lie in (0, {MAX_WEIGHT:g}], got 0"),
        ("11:dog", "the weight of '11:dog' must lie in (0, 10], got 11"),
        (" + ".join("abcdefghi"), f"a query has at most {MAX_TERMS} terms, this one has 9"),
    ],
)
def test_bad_queries_are_named(query, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_terms(query)


def test_a_query_must_be_a_string():
    with pytest.raises(TypeError, match="the query must be a string, not list"):
        parse_terms(["dog"])
