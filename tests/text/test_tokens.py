"""Tests for `capstone.text.tokens`: tokenize and tokenize_batch."""

import string
from unittest.mock import patch

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import example, given, settings

from capstone.text import tokens as text_module
from capstone.text.tokens import tokenize, tokenize_batch

# ---------------------------------------------------------------------------------------------
# tokenize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A man's hot-dog, on the  GRILL!", ["a", "mans", "hotdog", "on", "the", "grill"]),
        ("Two DOGS play.", ["two", "dogs", "play"]),
        # punctuation is deleted, not replaced by a space
        ("don't", ["dont"]),
        ("a.b,c", ["abc"]),
        ("end. start", ["end", "start"]),
        # every character of string.punctuation goes
        (f"x{string.punctuation}y", ["xy"]),
        # whitespace of every kind splits, runs of it count once
        ("a\tb\nc\r\nd  e", ["a", "b", "c", "d", "e"]),
        ("a\u3000b\xa0c\u2003d\x0be\x1cf", ["a", "b", "c", "d", "e", "f"]),
        ("  padded  ", ["padded"]),
        # stop words stay
        ("the a of and is", ["the", "a", "of", "and", "is"]),
        ("", []),
        ("?! ... ,", []),
        # only ASCII punctuation (string.punctuation) is removed
        ("«Café» naïve", ["«café»", "naïve"]),
        ("ΣΟΦΙΑ", ["σοφια"]),
        ("ΟΔΟΣ", ["οδος"]),  # final sigma
        ("a\x00b", ["a\x00b"]),  # NUL is neither whitespace nor punctuation
        ("123 4.5", ["123", "45"]),
    ],
)
def test_tokenize_examples(text: str, expected: list[str]):
    assert tokenize(text) == expected


@settings(max_examples=200)
@given(st.text())
def test_tokenize_tokens_have_no_whitespace_or_punctuation(text: str):
    tokens = tokenize(text)
    punctuation = set(string.punctuation)
    for token in tokens:
        assert token  # never an empty token
        assert token.split() == [token]  # no whitespace inside
        assert not punctuation & set(token)
    # removing punctuation and whitespace loses nothing else
    kept = "".join(text.lower().split())
    assert "".join(tokens) == "".join(c for c in kept if c not in punctuation)


# ---------------------------------------------------------------------------------------------
# tokenize_batch

_TRICKY = st.sampled_from(
    ["a", "A", "b", "Σ", "σ", "ς", "Α", "İ", " ", "\t", "\n", "\u3000", "\x00", ".", "'", "-", "é"]
)
texts_strategy = st.lists(
    st.one_of(st.text(), st.text(_TRICKY, max_size=12)),
    max_size=8,
)


def decode(batch) -> list[list[str]]:
    return [
        [batch.words[i] for i in batch.ids[batch.offsets[j] : batch.offsets[j + 1]]]
        for j in range(len(batch.offsets) - 1)
    ]


@settings(max_examples=300, deadline=None)
@given(texts=texts_strategy, chunk=st.sampled_from([1, 2, 3, 1 << 15]))
@example(texts=[], chunk=1 << 15)
@example(texts=[""], chunk=1 << 15)
@example(texts=["", "", ""], chunk=1 << 15)
@example(texts=["\x00"], chunk=1 << 15)
@example(texts=["a\x00b", "a", "b"], chunk=1 << 15)
@example(texts=["ΑΣ", "Β"], chunk=1 << 15)  # final sigma must not see the next text
@example(texts=["Α", "ΣΑ"], chunk=1 << 15)
@example(texts=["ΟΔΟΣ ΟΔΟΣ", "Σ", "ΣΟΣ"], chunk=1 << 15)
@example(texts=["A'", "Σ"], chunk=1 << 15)
@example(texts=["a b", "c", "\x00 d", "a"], chunk=2)  # a real NUL word after separators
@example(texts=["\x00", "a", "b"], chunk=1)
def test_tokenize_batch_matches_tokenize(texts: list[str], chunk: int):
    # Small chunks make one batch of several chunks, some tokenized one text at a time.
    with patch.object(text_module, "_TEXTS_PER_CHUNK", chunk):
        batch = tokenize_batch(texts)
    expected = [tokenize(t) for t in texts]

    assert decode(batch) == expected
    assert len(batch) == len(texts)
    flat = [tok for toks in expected for tok in toks]
    # distinct words, in order of first appearance
    assert batch.words == list(dict.fromkeys(flat))
    assert batch.ids.dtype == np.int64
    assert batch.offsets.dtype == np.int64
    assert batch.offsets.shape == (len(texts) + 1,)
    assert batch.offsets[0] == 0
    assert batch.offsets[-1] == len(batch.ids) == len(flat)
    assert (np.diff(batch.offsets) == [len(toks) for toks in expected]).all()


@pytest.mark.parametrize("texts", [["a b"], ["Two dogs.", "", "a DOG"], ["x"] * 5])
def test_tokenize_batch_without_nul_is_one_pass_not_text_by_text(texts: list[str]):
    # Only a text holding the separator (NUL) is tokenized on its own: the batch of all others
    # is split once, whatever its length.
    with patch.object(text_module, "tokenize", side_effect=AssertionError("text by text")):
        batch = tokenize_batch(texts)
    assert decode(batch) == [tokenize(t) for t in texts]


def test_tokenize_batch_docstring_example():
    b = tokenize_batch(["Two dogs.", "", "a DOG"])
    assert (b.words, b.ids.tolist(), b.offsets.tolist()) == (
        ["two", "dogs", "a", "dog"],
        [0, 1, 2, 3],
        [0, 2, 2, 4],
    )


def test_tokenize_batch_accepts_any_sequence_of_strings():
    b = tokenize_batch(t for t in ["a b", "b c"])
    assert decode(b) == [["a", "b"], ["b", "c"]]
    assert decode(tokenize_batch(("x",))) == [["x"]]


def test_tokenize_batch_empty():
    b = tokenize_batch([])
    assert b.words == []
    assert b.ids.shape == (0,)
    assert b.offsets.tolist() == [0]
    assert len(b) == 0


def test_tokenize_batch_rejects_a_bare_string():
    with pytest.raises(TypeError, match="`texts` must be a sequence of strings, not a single"):
        tokenize_batch("a dog")


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["a dog", 3], r"`texts\[1\]` is int, not str"),
        ([None], r"`texts\[0\]` is NoneType, not str"),
        (["a", "b", b"bytes"], r"`texts\[2\]` is bytes, not str"),
        (["a", ["nested"], 1.5], r"`texts\[1\]` is list, not str"),  # the first bad one
    ],
)
def test_tokenize_batch_rejects_non_strings_naming_the_index(texts, message):
    with pytest.raises(TypeError, match=message):
        tokenize_batch(texts)
