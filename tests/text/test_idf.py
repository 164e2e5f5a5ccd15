"""Tests for `capstone.text.idf`: IDF against counting by hand."""

import math
from collections import Counter

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from capstone.text.idf import IDF
from capstone.text.tokens import tokenize, tokenize_batch

# ---------------------------------------------------------------------------------------------
# IDF


def reference_idf(captions: list[str]) -> dict[str, float]:
    """IDF(t) = log10(N / n_t), n_t = the number of captions containing t (at least once)."""
    n_t = Counter(word for caption in captions for word in set(tokenize(caption)))
    return {word: math.log10(len(captions) / n) for word, n in n_t.items()}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(), st.text("ab Ab.\t", max_size=10)), min_size=1, max_size=10))
def test_idf_matches_reference(captions: list[str]):
    idf = IDF.fit(captions)
    expected = reference_idf(captions)

    assert idf.n_documents == len(captions)
    assert len(idf) == len(expected)
    assert set(idf.words) == set(expected)
    assert idf.words == tokenize_batch(captions).words  # rows in order of first appearance
    assert idf.idf.dtype == np.float64
    for word, value in expected.items():
        assert idf[word] == pytest.approx(value, rel=1e-12, abs=1e-15)
        assert idf.idf[idf.index[word]] == idf[word]
    assert idf["not-a-token"] == 0.0  # tokens never contain punctuation: never a caption word


def test_idf_docstring_example():
    idf = IDF.fit(["a dog", "a cat", "a dog and a dog"])
    assert round(idf["dog"], 4) == 0.1761
    assert idf["a"] == 0.0
    assert idf["zebra"] == 0.0
    assert idf["cat"] == pytest.approx(math.log10(3))


def test_idf_counts_a_repeated_word_once_per_caption():
    idf = IDF.fit(["dog dog dog dog", "cat", "cat", "Dog!"])
    assert idf["dog"] == pytest.approx(math.log10(4 / 2))
    assert idf["cat"] == pytest.approx(math.log10(4 / 2))


def test_idf_is_case_and_punctuation_insensitive():
    idf = IDF.fit(["The DOG.", "the dog", "a cat"])
    assert idf["dog"] == pytest.approx(math.log10(3 / 2))
    assert idf["DOG"] == 0.0  # lookups are of tokens, which are lowercase


def test_idf_of_captions_without_words():
    idf = IDF.fit(["", "?!", "  "])
    assert len(idf) == 0
    assert idf.n_documents == 3
    assert idf["a"] == 0.0


@pytest.mark.parametrize("captions", [[], ()])
def test_idf_needs_a_caption(captions):
    with pytest.raises(ValueError, match=r"^IDF needs at least one caption$"):
        IDF.fit(captions)


@pytest.mark.parametrize("values", [[0, 1], np.array([0.0, 0.5], np.float32)])
def test_idf_table_is_float64_whatever_it_is_given(values):
    # e.g. a student's idf that returns the int 0 for a word of every caption
    idf = IDF(["a", "b"], values, 2)
    assert idf.idf.dtype == np.float64
    assert idf.idf.tolist() == [float(v) for v in values]
