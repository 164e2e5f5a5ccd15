"""Tests for `capstone.embeddings.text`: TextEmbedder against a per-word loop."""

import re
from collections import Counter

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import example, given, settings

from capstone.course_math import idf as reference_idf
from capstone.data.glove import WordVectors
from capstone.embeddings.text import TextEmbedder
from capstone.text.tokens import tokenize, tokenize_batch

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
