"""Tests for `capstone.text`: tokenize, tokenize_batch, IDF and TextEmbedder.

The oracles are plain Python: `tokenize` one text at a time, IDF from a `Counter` over the set of
words of each caption, and embeddings summed token by token in float64.
"""

import math
import re
import string
from collections import Counter
from unittest.mock import patch

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import example, given, settings

from capstone import text as text_module
from capstone.glove import WordVectors
from capstone.text import IDF, TextEmbedder, tokenize, tokenize_batch

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
    with pytest.raises(ValueError, match="IDF needs at least one caption"):
        IDF.fit(captions)


# ---------------------------------------------------------------------------------------------
# TextEmbedder

DIM = 6
IN_GLOVE = ["a", "dog", "cat", "on", "the", "red", "grill", "ball", "man"]
NOT_IN_GLOVE = ["zzyzx", "qwop"]  # may occur in captions, have no vector
GLOVE_ONLY = ["zebra", "giraffe", "kite"]  # have vectors, never occur in captions
_rng = np.random.default_rng(1234)
GLOVE_WORDS = IN_GLOVE + GLOVE_ONLY
GLOVE_VECTORS = _rng.normal(size=(len(GLOVE_WORDS), DIM)).astype(np.float32)
GLOVE = WordVectors(GLOVE_WORDS, GLOVE_VECTORS, source="toy-glove")
GLOVE_DICT = {w: GLOVE_VECTORS[i].astype(np.float64) for i, w in enumerate(GLOVE_WORDS)}


def reference_sums(texts, idf: dict[str, float]):
    """Per text: sum of IDF(t) * glove[t] over its tokens (float64), and the sum of the sizes of
    the terms, ``sum |IDF(t)| * ||glove[t]||``, which bounds the rounding error of the sum."""
    sums = np.zeros((len(texts), DIM))
    scales = np.zeros(len(texts))
    for i, text in enumerate(texts):
        for token in tokenize(text):
            if token in idf and token in GLOVE_DICT:
                sums[i] += idf[token] * GLOVE_DICT[token]
                scales[i] += abs(idf[token]) * np.linalg.norm(GLOVE_DICT[token])
    return sums, scales


def assert_embeddings_match(got: np.ndarray, sums: np.ndarray, scales: np.ndarray):
    """``got`` is the normalized ``sums``: each row unit length, or zero if no token counts."""
    assert got.dtype == np.float32
    assert got.shape == sums.shape
    got = got.astype(np.float64)
    nothing = scales == 0
    assert (got[nothing] == 0).all(), "a text none of whose words counts must embed to zero"
    norms = np.linalg.norm(got, axis=1)
    assert np.all((norms == 0) | np.isclose(norms, 1, atol=1e-5)), norms
    # got * ||sum|| must be the sum, up to float32 rounding of its terms. (Comparing this way
    # stays meaningful even when the terms nearly cancel.)
    error = np.abs(got * np.linalg.norm(sums, axis=1, keepdims=True) - sums).max(axis=1)
    bound = 1e-5 * scales
    assert (error <= bound).all(), (error, bound)
    # A well-conditioned sum must not be lost to rounding.
    clear = np.linalg.norm(sums, axis=1) > 1e-3 * scales
    assert (norms[clear & ~nothing] > 0).all()


def _styled(word: str):
    # case, and punctuation inside or around a word, must not matter
    return st.sampled_from([word, word.upper(), word.title(), f"{word},", f"'{word}'", f"{word}."])


caption_words = st.sampled_from(IN_GLOVE + NOT_IN_GLOVE).flatmap(_styled)
query_words = st.sampled_from(IN_GLOVE + NOT_IN_GLOVE + GLOVE_ONLY + ["nowhere"]).flatmap(_styled)
# ", " without a space glues two words into one token that is in neither table
separators = st.sampled_from([" ", "  ", "\t", "\n", " - ", "!\u3000", ","])


def sentences(words):
    return st.lists(st.tuples(words, separators), max_size=8).map(
        lambda parts: "".join(w + s for w, s in parts)
    )


@settings(max_examples=100, deadline=None)
@given(captions=st.lists(sentences(caption_words), min_size=1, max_size=12))
@example(captions=["a dog", "a cat", "a"])  # "a" is in every caption: IDF 0, embeds to zero
@example(captions=["zzyzx qwop", "dog"])  # a caption with no GloVe word at all
@example(captions=["", "dog dog cat"])
def test_fit_matches_reference(captions: list[str]):
    embedder, embeddings = TextEmbedder.fit(captions, GLOVE)
    idf = reference_idf(captions)

    assert_embeddings_match(embeddings, *reference_sums(captions, idf))
    # embedding the captions again gives what fit gave
    np.testing.assert_allclose(embedder.embed(captions), embeddings, atol=1e-6)
    assert embedder.dim == DIM
    assert embedder.table.dtype == np.float32
    assert embedder.table.shape == (len(idf) + 1, DIM)
    assert not embedder.table[-1].any()  # the row of tokens that are not in the IDF table


@settings(max_examples=100, deadline=None)
@given(
    captions=st.lists(sentences(caption_words), min_size=1, max_size=8),
    texts=st.lists(sentences(query_words), max_size=6),
)
def test_embed_matches_reference(captions: list[str], texts: list[str]):
    embedder, _ = TextEmbedder.fit(captions, GLOVE)
    got = embedder.embed(texts)
    assert_embeddings_match(got, *reference_sums(texts, reference_idf(captions)))


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    captions = ["A dog on the grill.", "a cat", "A RED ball", "the man", "zzyzx dog"]
    return TextEmbedder.fit(captions, GLOVE)[0]


def test_embed_ignores_words_never_in_captions(embedder: TextEmbedder):
    # zebra has a GloVe vector but no IDF; nowhere has neither; qwop has neither either
    expected = embedder.embed(["dog red"])
    for text in ["dog zebra red", "Zebra, dog; red nowhere!", "qwop dog red kite"]:
        np.testing.assert_array_equal(embedder.embed([text]), expected)
    zero = embedder.embed(["zebra giraffe", "", "...", "zzyzx"])
    assert zero.shape == (4, DIM)
    assert not zero.any()


def test_embed_empty_batch(embedder: TextEmbedder):
    out = embedder.embed([])
    assert out.shape == (0, DIM)
    assert out.dtype == np.float32


def test_embed_rejects_non_strings(embedder: TextEmbedder):
    with pytest.raises(TypeError, match=r"`texts\[1\]` is int, not str"):
        embedder.embed(["dog", 7])
    with pytest.raises(TypeError, match="not a single string"):
        embedder.embed("dog")


def test_embed_query_matches_embed(embedder: TextEmbedder):
    query = "A red DOG, on the grill!"
    vector = embedder.embed_query(query)
    assert vector.shape == (DIM,)
    assert vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1, abs=1e-6)
    np.testing.assert_array_equal(vector, embedder.embed([query])[0])


@pytest.mark.parametrize(("query", "kind"), [(5, "int"), (None, "NoneType"), (b"dog", "bytes")])
def test_embed_query_rejects_non_strings(embedder: TextEmbedder, query, kind):
    with pytest.raises(TypeError, match=f"query must be a string, not {kind}"):
        embedder.embed_query(query)


@pytest.mark.parametrize("query", ["", "   ", "?!", "... --- ...", "\t\n"])
def test_embed_query_rejects_text_without_words(embedder: TextEmbedder, query: str):
    with pytest.raises(ValueError, match=re.escape(f"query {query!r} has no words")):
        embedder.embed_query(query)


@pytest.mark.parametrize("query", ["zebra", "nowhere at all", "zzyzx", "Qwop, giraffe!"])
def test_embed_query_rejects_text_without_known_words(embedder: TextEmbedder, query: str):
    with pytest.raises(
        ValueError,
        match=re.escape(f"no word of query {query!r} carries weight"),
    ):
        embedder.embed_query(query)


def test_known_words(embedder: TextEmbedder):
    # dog: caption word with a vector; zebra: vector but no caption; zzyzx: caption, no vector
    counted, ignored = embedder.known_words("Dog, zebra and the DOG zzyzx!")
    assert counted == ["dog", "the", "dog"]
    assert ignored == ["zebra", "and", "zzyzx"]
    assert embedder.known_words("") == ([], [])


# ---------------------------------------------------------------------------------------------
# Large batches


def test_a_word_in_every_caption_weighs_nothing():
    wv = WordVectors(["a", "dog", "cat"], np.eye(3, dtype=np.float32), source="toy")
    text, _ = TextEmbedder.fit(["a dog", "a cat", "A cat."], wv)
    assert text.idf["a"] == 0.0
    assert text.known_words("a dog") == (["dog"], ["a"])
    with pytest.raises(ValueError, match=re.escape("no word of query 'a A' carries weight")):
        text.embed_query("a A")


def _vectorized_reference(captions: list[str], words: list[str], vectors: np.ndarray):
    """Reference sums for many captions, accumulated with np.add.at in float64."""
    tokens = [tokenize(c) for c in captions]
    idf = reference_idf(captions)
    row = {w: i for i, w in enumerate(words)}
    weighted = np.zeros((len(words) + 1, vectors.shape[1]))  # last row: no IDF or no vector
    sizes = np.zeros(len(words) + 1)
    for word, value in idf.items():
        if word in row:
            weighted[row[word]] = value * vectors[row[word]]
            sizes[row[word]] = abs(value) * np.linalg.norm(vectors[row[word]].astype(np.float64))
    flat = np.array([row.get(t, len(words)) for toks in tokens for t in toks], dtype=np.int64)
    owner = np.repeat(np.arange(len(captions)), [len(toks) for toks in tokens])
    sums = np.zeros((len(captions), vectors.shape[1]))
    scales = np.zeros(len(captions))
    np.add.at(sums, owner, weighted[flat])
    np.add.at(scales, owner, sizes[flat])
    return sums, scales


def _assert_large_batch_matches(captions: list[str], words: list[str], vectors: np.ndarray):
    glove = WordVectors(words, vectors, source="big-toy")
    embedder, embeddings = TextEmbedder.fit(captions, glove)
    sums, scales = _vectorized_reference(captions, words, vectors)
    assert_embeddings_match(embeddings, sums, scales)
    np.testing.assert_allclose(embedder.embed(captions), embeddings, atol=1e-6)


def _vocabulary(n_words: int, n_with_vectors: int, dim: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n_words)]
    return rng, words[:n_with_vectors], rng.normal(size=(n_with_vectors, dim)).astype(np.float32)


def test_fit_over_many_captions():
    rng, words, vectors = _vocabulary(300, 250)
    lengths = rng.integers(0, 11, size=20_000)  # ~100k tokens, some empty captions
    picks = rng.integers(0, 300, size=lengths.sum())
    ends = np.cumsum(lengths)
    captions = [
        " ".join(f"w{j}" for j in picks[e - n : e]) for n, e in zip(lengths, ends, strict=True)
    ]
    _assert_large_batch_matches(captions, words, vectors)


def test_embed_one_very_long_text(embedder: TextEmbedder):
    text = " ".join(["dog", "red", "zebra", "cat"] * 20_000)  # 80,000 tokens
    np.testing.assert_allclose(embedder.embed([text]), embedder.embed(["dog red cat"]), atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.lists(st.sampled_from(["a", "dog", "cat", "red", "x"]), max_size=6)),
    renumber=st.booleans(),
)
def test_counts_matches_counter(texts: list[list[str]], renumber: bool):
    batch = tokenize_batch([" ".join(t) for t in texts])
    columns = np.arange(len(batch.words))[::-1] + 2 if renumber else None
    counts = batch.counts(columns).toarray()
    width = len(batch.words) + 2 if renumber and batch.words else len(batch.words)
    expected = np.zeros((len(texts), width), dtype=np.float32)
    for i, tokens in enumerate(texts):
        for word, n in Counter(tokens).items():
            j = batch.words.index(word)
            expected[i, columns[j] if renumber else j] = n
    np.testing.assert_array_equal(counts, expected)
    assert counts.dtype == np.float32
