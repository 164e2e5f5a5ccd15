"""The fast paths of `capstone` equal the plain course math of `capstone.course_math`."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capstone import course_math as plain
from capstone.common.vectors import top_k
from capstone.data.coco import CocoData
from capstone.data.glove import WordVectors
from capstone.embeddings.image import ImageEmbedder
from capstone.embeddings.text import TextEmbedder
from capstone.evaluation.metrics import caption_ranks, retrieval_metrics, triple_accuracy
from capstone.text.idf import IDF
from capstone.text.tokens import tokenize_batch
from capstone.training.steps import train_step
from capstone.training.triples import Triples

WORDS = ["a", "dog", "cat", "on", "the", "beach", "red", "bus", "two", "Dogs", "zebra"]
#: Captions from a small vocabulary with punctuation, case and repeats; some empty.
CAPTIONS = st.lists(
    st.lists(st.sampled_from([*WORDS, "dog,", "BEACH!", "hot-dog", "  "]), max_size=8).map(
        " ".join
    ),
    min_size=1,
    max_size=12,
)
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(TEXT, max_size=6))
def test_tokenize_batch_is_tokenize_of_each(texts):
    batch = tokenize_batch(texts)
    for i, text in enumerate(texts):
        ids = batch.ids[batch.offsets[i] : batch.offsets[i + 1]]
        assert [batch.words[j] for j in ids] == plain.tokenize(text)


@settings(max_examples=100, deadline=None)
@given(captions=CAPTIONS)
def test_idf_table_is_the_plain_idf(captions):
    table = IDF.fit(captions)
    expected = plain.idf(captions)
    assert set(table.words) == set(expected)
    for word, value in expected.items():
        assert table[word] == pytest.approx(value, abs=1e-12)


def word_vectors(seed: int, d: int = 4) -> WordVectors:
    rng = np.random.default_rng(seed)
    words = [w.lower() for w in WORDS if w != "zebra"]  # "zebra": in captions, not in GloVe
    return WordVectors(words, rng.normal(size=(len(words), d)).astype(np.float32), "test")


@settings(max_examples=100, deadline=None)
@given(captions=CAPTIONS, queries=st.lists(TEXT, max_size=3), seed=st.integers(0, 99))
def test_text_embeddings_are_the_plain_caption_embedding(captions, queries, seed):
    glove = word_vectors(seed)
    embedder, embeddings = TextEmbedder.fit(captions, glove)
    idf = plain.idf(captions)
    vectors = {w: glove[w] for w in glove.words}
    for text, row in zip(captions + queries, [*embeddings, *embedder.embed(queries)], strict=True):
        np.testing.assert_allclose(row, plain.caption_embedding(text, idf, vectors), atol=1e-5)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6))
def test_image_embeddings_are_the_plain_image_embedding(seed, n):
    rng = np.random.default_rng(seed)
    model = ImageEmbedder(5, d_in=7, seed=seed % 1000)
    x = rng.normal(size=(n, 7)).astype(np.float32)
    for row, descriptor in zip(model.embed(x), x, strict=True):
        expected = plain.image_embedding(descriptor, model.weight.data)
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), q=st.integers(1, 5), p=st.integers(1, 7))
def test_caption_ranks_are_the_plain_rank_with_ties(data, q, p):
    small = st.integers(-2, 2).map(float)  # ties are common
    captions = data.draw(hnp.arrays(np.float64, (q, 2), elements=small))
    images = data.draw(hnp.arrays(np.float64, (p, 2), elements=small))
    true = data.draw(st.lists(st.integers(0, p - 1), min_size=q, max_size=q))
    ranks = caption_ranks(captions, images, np.array(true))
    for c, t, rank in zip(captions, true, ranks, strict=True):
        scores = [plain.similarity(c, image) for image in images]
        assert rank == plain.rank_of_true_image(scores, t)


def test_retrieval_recall_is_the_plain_recall_at_k():
    rng = np.random.default_rng(3)
    n, d = 40, 6
    counts = rng.integers(1, 4, size=n)
    caption_image = np.repeat(np.arange(n), counts)
    data = CocoData(
        image_ids=np.arange(n, dtype=np.int64),
        urls=[""] * n,
        descriptors=rng.normal(size=(n, 9)).astype(np.float32),
        caption_ids=np.arange(len(caption_image), dtype=np.int64),
        captions=[""] * len(caption_image),
        caption_image=caption_image,
        caption_offsets=np.concatenate([[0], np.cumsum(counts)]),
    )
    embeddings = rng.normal(size=(len(caption_image), d)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    model = ImageEmbedder(d, d_in=9, seed=1)
    metrics = retrieval_metrics(model, data, embeddings, np.arange(n), pool_size=n, seed=0)
    order = np.random.default_rng(0).permutation(n)  # the pool's order, as retrieval shuffles
    images = model.embed(data.descriptors[order])
    ranks = [
        plain.rank_of_true_image(
            [plain.similarity(embeddings[c], v) for v in images], int(np.flatnonzero(order == i)[0])
        )
        for i in range(n)
        for c in range(data.caption_offsets[i], data.caption_offsets[i + 1])
    ]
    for k, value in [
        (1, metrics.recall_at_1),
        (5, metrics.recall_at_5),
        (10, metrics.recall_at_10),
    ]:
        assert value == pytest.approx(plain.recall_at_k(ranks, k), abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    scores=st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=600),
    k=st.integers(1, 20),
)
def test_top_k_is_the_plain_top_k(scores, k):
    assert top_k(np.array(scores), k).tolist() == plain.top_k(scores, k)


class Recorder:
    def step(self):
        pass


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), margin=st.sampled_from([0.0, 0.1, 0.25, 1.0]))
def test_train_step_loss_and_accuracy_are_the_plain_ones(seed, margin):
    rng = np.random.default_rng(seed)
    model = ImageEmbedder(4, d_in=6, seed=seed % 1000)
    model.weight.data = model.weight.data.astype(np.float64)
    captions = rng.normal(size=(8, 4))
    captions /= np.linalg.norm(captions, axis=1, keepdims=True)
    x_true, x_conf = rng.normal(size=(8, 6)), rng.normal(size=(8, 6))
    loss, accuracy = train_step(model, Recorder(), captions, x_true, x_conf, margin)
    W = model.weight.data

    def sims(x):
        return [
            plain.similarity(c, plain.image_embedding(d, W))
            for c, d in zip(captions, x, strict=True)
        ]

    s_true, s_conf = sims(x_true), sims(x_conf)
    losses = [plain.margin_ranking_loss(t, f, margin) for t, f in zip(s_true, s_conf, strict=True)]
    assert loss == pytest.approx(np.mean(losses), rel=1e-9, abs=1e-12)
    assert accuracy == plain.triple_accuracy(s_true, s_conf)


def test_triple_accuracy_of_a_dataset_is_the_plain_one():
    rng = np.random.default_rng(0)
    n = 12
    data = CocoData(
        image_ids=np.arange(n, dtype=np.int64),
        urls=[""] * n,
        descriptors=rng.normal(size=(n, 5)).astype(np.float32),
        caption_ids=np.arange(n, dtype=np.int64),
        captions=[""] * n,
        caption_image=np.arange(n),
        caption_offsets=np.arange(n + 1),
    )
    embeddings = rng.normal(size=(n, 3)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    model = ImageEmbedder(3, d_in=5, seed=2)
    triples = Triples(np.arange(n), np.arange(n), (np.arange(n) + 1) % n)
    images = model.embed(data.descriptors)
    s_true = [plain.similarity(embeddings[i], images[i]) for i in range(n)]
    s_conf = [plain.similarity(embeddings[i], images[(i + 1) % n]) for i in range(n)]
    assert triple_accuracy(model, data, embeddings, triples) == plain.triple_accuracy(
        s_true, s_conf
    )


# Edge cases of the plain functions themselves (mutation testing found them unpinned).


def test_plain_similarity_and_triple_accuracy_refuse_unequal_lengths():
    with pytest.raises(ValueError):
        plain.similarity(np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        plain.triple_accuracy([0.9, 0.8], [0.1])


def test_plain_triple_accuracy_counts_a_tie_as_a_loss():
    # "strictly higher": a confusor scoring the same as the true image is not beaten
    assert plain.triple_accuracy([0.5, 0.9], [0.5, 0.1]) == 0.5


def test_plain_image_embedding_of_a_zero_descriptor_is_zeros_not_nan():
    y = plain.image_embedding(np.zeros(4, np.float32), np.ones((4, 3), np.float32))
    np.testing.assert_array_equal(y, np.zeros(3))


def test_plain_caption_embedding_sums_float32_vectors_in_float64():
    # GloVe ships float32 vectors; the reference sums IDF(t) * glove[t] in float64, so a
    # float32 product would be ~1e-8 off
    rng = np.random.default_rng(0)
    glove = {w: rng.standard_normal(5).astype(np.float32) for w in ("dog", "cat")}
    idf = {"dog": 0.1, "cat": 0.3}
    e = sum(idf[w] * glove[w].astype(np.float64) for w in ("dog", "cat"))
    np.testing.assert_allclose(
        plain.caption_embedding("dog cat", idf, glove), e / np.linalg.norm(e), rtol=1e-13
    )
