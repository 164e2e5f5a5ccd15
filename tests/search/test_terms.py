"""Tests of `capstone.search.terms`: weighted +/- query terms, against the query they were
written from."""

from __future__ import annotations

import re
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from capstone.search.terms import MAX_TERMS, MAX_WEIGHT, format_terms, parse_terms, photo_term

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
        ("dog - ", "the query 'dog - ' has an empty term (after '-')"),
        ("dog + + cat", "the query 'dog + + cat' has an empty term (after '+')"),
        ("2: + dog", "the query '2: + dog' has an empty term (after '+')"),  # the first term
        ("0:dog", f"the weight of '0:dog' must lie in (0, {MAX_WEIGHT:g}], got 0"),
        ("11:dog", "the weight of '11:dog' must lie in (0, 10], got 11"),
        (" + ".join("abcdefghi"), f"a query has at most {MAX_TERMS} terms, this one has 9"),
    ],
)
def test_bad_queries_are_named(query, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_terms(query)


def test_a_query_must_be_a_string():
    with pytest.raises(TypeError, match="the query must be a string, not list"):
        parse_terms(["dog"])


@pytest.mark.parametrize(
    ("terms", "query"),
    [
        ([(2.0, "dog"), (1.0, "beach"), (-1.0, "sand")], "2:dog + beach - sand"),
        ([(-0.5, "sand"), (10.0, "dog")], "- 0.5:sand + 10:dog"),
        # a weight that "%g" would round is written in full, so it reads back the same
        ([(1.2345678, "dog"), (-(0.1 + 0.2), "cat")], "1.2345678:dog - 0.30000000000000004:cat"),
    ],
)
def test_format_writes_the_shortest_weight_that_reads_back(terms, query):
    assert format_terms(terms) == query
    assert parse_terms(query) == terms


# -- photo terms ---------------------------------------------------------------------------------

PHOTO_NAMES = ("pool.jpg", "a b.PNG", "x-y.webp")


@pytest.fixture
def photo_dir(tmp_path, monkeypatch):
    """A working folder with three (empty) photo files and a folder ``pics``."""
    for name in PHOTO_NAMES:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "pics").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


# a photo term as a user types it, with the path parse_terms gives for it
PHOTO = st.sampled_from(
    [(f"./{n}", Path(n)) for n in PHOTO_NAMES] + [("pool.jpg", Path("pool.jpg"))]
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1.0, -1.0]), WEIGHT, st.one_of(TEXT.map(lambda t: (t, t)), PHOTO)
        ),
        min_size=1,
        max_size=MAX_TERMS,
    )
)
def test_format_and_parse_round_trip_with_photo_terms(photo_dir, terms):
    typed = [(sign * (1.0 if w is None else w), t) for sign, w, (t, _) in terms]
    query = format_terms(typed)
    parsed = [(sign * (1.0 if w is None else w), term) for sign, w, (_, term) in terms]
    assert parse_terms(query, photos=True) == parsed
    # without photos (the web app) every term is words: the path's text, never a file
    assert parse_terms(query) == typed


def test_photo_terms(photo_dir):
    assert parse_terms("2:golden retriever + ./pool.jpg - fruit", photos=True) == [
        (2.0, "golden retriever"),
        (1.0, Path("pool.jpg")),
        (-1.0, "fruit"),
    ]
    assert parse_terms("dog -./pool.jpg", photos=True) == [(1.0, "dog"), (-1.0, Path("pool.jpg"))]
    assert parse_terms("0.5:a b.PNG", photos=True) == [(0.5, Path("a b.PNG"))]
    assert parse_terms(f"{photo_dir}/pool.jpg", photos=True) == [(1.0, photo_dir / "pool.jpg")]
    assert parse_terms("dog + ./pool.jpg") == [(1.0, "dog"), (1.0, "./pool.jpg")]
    assert photo_term("a dog on a beach") is None
    assert photo_term("snow-covered hills") is None


def test_a_home_photo_term(photo_dir, monkeypatch):
    monkeypatch.setenv("HOME", str(photo_dir))
    assert photo_term("~/pool.jpg") == photo_dir / "pool.jpg"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("dog + ./missing.jpg", "the photo term './missing.jpg': no such file"),
        ("dog + missing.jpeg", "the photo term 'missing.jpeg': no such file"),
        ("2:/no/such/folder/x", "the photo term '/no/such/folder/x': no such file"),
        ("dog - ./pics", "the photo term './pics' is a folder, expected a photo file"),
    ],
)
def test_a_path_that_is_no_photo_file_is_an_error_naming_it(photo_dir, query, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_terms(query, photos=True)


# -- the limits: exactly at them accepted, one past them refused ---------------------------------


def test_exactly_the_most_terms_and_the_largest_weight_are_accepted():
    query = " + ".join(f"{MAX_WEIGHT:g}:w{i}" for i in range(MAX_TERMS))
    assert parse_terms(query) == [(MAX_WEIGHT, f"w{i}") for i in range(MAX_TERMS)]


def test_one_term_or_weight_past_the_limits_is_refused():
    with pytest.raises(
        ValueError, match=f"at most {MAX_TERMS} terms, this one has {MAX_TERMS + 1}"
    ):
        parse_terms(" - ".join(f"w{i}" for i in range(MAX_TERMS + 1)))
    above = f"{MAX_WEIGHT:g}.000001"
    with pytest.raises(
        ValueError, match=re.escape(f"must lie in (0, {MAX_WEIGHT:g}], got {above}")
    ):
        parse_terms(f"dog + {above}:cat")
