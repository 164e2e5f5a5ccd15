"""Tests of `capstone.evaluation.metrics`: ranks, COCO-1K retrieval metrics, chance, the report."""

from __future__ import annotations

import itertools
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from capstone.data.coco import CocoData
from capstone.data.split import split_images
from capstone.embeddings.image import ImageEmbedder
from capstone.evaluation import metrics as metrics_module
from capstone.evaluation.metrics import (
    RetrievalMetrics,
    caption_ranks,
    chance_metrics,
    evaluation_report,
    format_report,
    image_ranks,
    retrieval_metrics,
    triple_accuracy,
)
from capstone.training.recipes import TrainConfig
from capstone.training.train import train
from capstone.training.triples import Triples, evaluation_triples, make_triples, validation_triples

T2I_KEYS = {"recall_at_1", "recall_at_5", "recall_at_10", "median_rank", "mrr"}
METRIC_KEYS = T2I_KEYS | {f"i2t_{key}" for key in T2I_KEYS}
FIGURE_KEYS = METRIC_KEYS | {"triple_accuracy", "hard_triple_accuracy"}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_data(descriptors, counts) -> CocoData:
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    caption_image = np.repeat(np.arange(n), counts)
    m = len(caption_image)
    return CocoData(
        image_ids=np.arange(n, dtype=np.int64) * 2 + 1,
        urls=[f"http://example.invalid/{i}.jpg" for i in range(n)],
        descriptors=np.asarray(descriptors, dtype=np.float32),
        caption_ids=np.arange(m, dtype=np.int64) + 500,
        captions=[f"caption {i}" for i in range(m)],
        caption_image=caption_image.astype(np.int64),
        caption_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )


def first_captions(data: CocoData, images, per_image: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The first ``per_image`` captions of each image in ``images``, and their owner's position."""
    caption, owner = [], []
    for position, i in enumerate(images):
        lo, hi = data.caption_offsets[i], data.caption_offsets[i + 1]
        caption.extend(range(lo, min(hi, lo + per_image)))
        owner.extend([position] * min(hi - lo, per_image))
    return np.array(caption, dtype=np.int64), np.array(owner, dtype=np.int64)


def identity_model(d: int) -> ImageEmbedder:
    model = ImageEmbedder(d, d_in=d, seed=0)
    model.weight.data[...] = np.eye(d, dtype=model.weight.dtype)
    return model


def perfect_problem(counts, d=16, seed=0):
    """Data on which the identity model is perfect for each image's first 5 captions.

    Caption k < 5 of image i embeds as the image's own (unit) descriptor; its 6th, 7th ...
    captions as the opposite direction, so that they rank their image last: they must not be
    queries.
    """
    rng = np.random.default_rng(seed)
    descriptors = rng.normal(size=(len(counts), d)).astype(np.float32)
    data = make_data(descriptors, counts)
    position = np.arange(data.n_captions) - data.caption_offsets[data.caption_image]
    sign = np.where(position < 5, 1.0, -1.0)[:, None]
    embeddings = sign * unit(descriptors[data.caption_image].astype(np.float64))
    return data, embeddings, identity_model(d)


def summary(ranks: np.ndarray) -> dict:
    """NumPy reference of the figures of a set of ranks."""
    return {
        "recall_at_1": np.mean(ranks <= 1),
        "recall_at_5": np.mean(ranks <= 5),
        "recall_at_10": np.mean(ranks <= 10),
        "median_rank": np.median(ranks),
        "mrr": np.mean(1 / ranks),
    }


# ---------------------------------------------------------------------------------- caption_ranks


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    q=st.integers(1, 6),
    p=st.integers(1, 8),
    d=st.integers(1, 3),
)
def test_caption_ranks_match_brute_force_with_ties(data, q, p, d):
    # Small integers make tied scores common; dot products of them are exact in float64.
    elements = st.integers(-2, 2).map(float)
    captions = data.draw(hnp.arrays(np.float64, (q, d), elements=elements), label="captions")
    images = data.draw(hnp.arrays(np.float64, (p, d), elements=elements), label="images")
    true_image = data.draw(st.lists(st.integers(0, p - 1), min_size=q, max_size=q), label="true")

    ranks = caption_ranks(captions, images, np.array(true_image))

    expected = []
    for c, t in zip(captions.tolist(), true_image, strict=True):
        scores = [sum(a * b for a, b in zip(c, image, strict=True)) for image in images.tolist()]
        better = sum(s > scores[t] for s in scores)
        ties = sum(s == scores[t] for j, s in enumerate(scores) if j != t)
        expected.append(1 + better + ties / 2)
    assert ranks.dtype == np.float64 and ranks.shape == (q,)
    assert ranks.tolist() == expected
    assert np.all((1 <= ranks) & (ranks <= p))


def test_caption_ranks_all_tied_is_the_middle():
    ranks = caption_ranks(np.ones((3, 2)), np.zeros((7, 2)), [0, 3, 6])
    assert ranks.tolist() == [4.0, 4.0, 4.0]


def test_caption_ranks_known_order():
    # scores of the single caption: image 0 -> 0.1, 1 -> 0.9, 2 -> 0.5, 3 -> 0.5
    images = np.array([[0.1], [0.9], [0.5], [0.5]])
    ranks = caption_ranks(np.ones((4, 1)), images, np.array([1, 2, 3, 0]))
    assert ranks.tolist() == [1.0, 2.5, 2.5, 4.0]


# ----------------------------------------------------------------------------------- image_ranks


@settings(max_examples=200, deadline=None)
@given(data=st.data(), p=st.integers(1, 6), d=st.integers(1, 3))
def test_image_ranks_match_brute_force_with_ties(data, p, d):
    elements = st.integers(-2, 2).map(float)
    images = data.draw(hnp.arrays(np.float64, (p, d), elements=elements), label="images")
    # every image owns 1..3 captions, in any order
    counts = data.draw(st.lists(st.integers(1, 3), min_size=p, max_size=p), label="counts")
    owner = data.draw(st.permutations(np.repeat(np.arange(p), counts).tolist()), label="owner")
    captions = data.draw(
        hnp.arrays(np.float64, (len(owner), d), elements=elements), label="captions"
    )

    ranks = image_ranks(images, captions, np.array(owner))

    expected = []
    for i, image in enumerate(images.tolist()):
        scores = [sum(a * b for a, b in zip(image, c, strict=True)) for c in captions.tolist()]
        best = max(s for s, o in zip(scores, owner, strict=True) if o == i)
        others = [s for s, o in zip(scores, owner, strict=True) if o != i]
        expected.append(1 + sum(s > best for s in others) + sum(s == best for s in others) / 2)
    assert ranks.dtype == np.float64 and ranks.shape == (p,)
    assert ranks.tolist() == expected


def test_image_ranks_known_order():
    # one image; captions 0, 1 are its own (scores 0.2, 0.6), the others score 0.9, 0.6, 0.1
    captions = np.array([[0.2], [0.6], [0.9], [0.6], [0.1]])
    ranks = image_ranks(np.ones((2, 1)), captions, np.array([0, 0, 1, 1, 1]))
    assert ranks.tolist() == [2.5, 1.0]  # image 0: 0.9 above, 0.6 tied; image 1: its 0.9 first


# ---------------------------------------------------------------------------------- chance_metrics


@pytest.mark.parametrize("p", [1, 2, 3, 5, 7, 10, 11, 60, 1000])
def test_chance_metrics_formulas(p):
    chance = chance_metrics(p, n_pools=3)
    for k, value in [(1, chance.recall_at_1), (5, chance.recall_at_5), (10, chance.recall_at_10)]:
        assert value == pytest.approx(float(Fraction(min(k, p), p)), rel=1e-12)
    assert chance.median_rank == (p + 1) / 2
    harmonic = sum(Fraction(1, k) for k in range(1, p + 1))
    assert chance.mrr == pytest.approx(float(harmonic / p), rel=1e-12)
    assert (chance.pool_size, chance.n_pools) == (p, 3)


def test_chance_for_the_coco_1k_protocol():
    chance = chance_metrics(1000)
    assert (chance.recall_at_1, chance.recall_at_5, chance.recall_at_10) == (0.001, 0.005, 0.01)
    assert chance.median_rank == 500.5
    assert chance.mrr == pytest.approx(0.0074854708605503, rel=1e-12)  # H_1000 / 1000
    assert (chance.pool_size, chance.n_pools, chance.n_queries) == (1000, 1, 0)  # no queries run


def test_a_permutation_of_ranks_is_exactly_chance():
    # 50 images on a quarter circle, one caption each, all captions the same direction: the
    # true images' ranks are a permutation of 1..50, whose figures are chance's exactly.
    p = 50
    angle = np.linspace(0.1, 1.4, p)
    descriptors = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    data = make_data(descriptors, [1] * p)
    embeddings = np.tile([1.0, 0.0], (p, 1))
    metrics = retrieval_metrics(identity_model(2), data, embeddings, np.arange(p))
    chance = chance_metrics(p)
    for key in T2I_KEYS:
        assert getattr(metrics, key) == pytest.approx(getattr(chance, key), rel=1e-12), key
    assert (metrics.pool_size, metrics.n_pools, metrics.n_queries) == (p, 1, p)


@pytest.mark.parametrize(("p", "c"), [(1, 5), (2, 5), (3, 2), (4, 1), (2, 3)])
def test_image_to_caption_chance_by_enumeration(p, c):
    # Every placement of an image's c right captions among the pool's c * p is equally likely:
    # enumerate them all and take the rank of the first.
    n = c * p
    ranks = [min(places) + 1 for places in itertools.combinations(range(n), c)]
    chance = chance_metrics(p, captions_per_image=c)
    for k in (1, 5, 10):
        expected = Fraction(sum(r <= k for r in ranks), len(ranks))
        assert getattr(chance, f"i2t_recall_at_{k}") == pytest.approx(float(expected), rel=1e-12)
    assert chance.i2t_median_rank == float(np.median(ranks))
    mrr = sum(Fraction(1, r) for r in ranks) / len(ranks)
    assert chance.i2t_mrr == pytest.approx(float(mrr), rel=1e-12)


def test_image_to_caption_chance_with_one_caption_is_caption_to_image_chance():
    for p in (1, 2, 7, 50):
        chance = chance_metrics(p, captions_per_image=1)
        for key in T2I_KEYS:
            assert getattr(chance, f"i2t_{key}") == pytest.approx(getattr(chance, key)), key


def test_image_to_caption_chance_for_the_coco_1k_protocol():
    chance = chance_metrics(1000)  # 5,000 captions, 5 right ones
    assert chance.i2t_recall_at_1 == pytest.approx(0.001)
    assert chance.i2t_recall_at_10 == pytest.approx(
        1 - np.prod((4995 - np.arange(10)) / (5000 - np.arange(10)))
    )
    assert chance.i2t_median_rank == 647.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_random_model_on_random_data_is_near_chance(seed):
    # 800 images (one pool), 5 unrelated captions each: 4,000 queries whose ranks are uniform.
    rng = np.random.default_rng(seed)
    p = 800
    data = make_data(rng.normal(size=(p, 32)), [5] * p)
    embeddings = unit(rng.normal(size=(data.n_captions, 12)))
    model = ImageEmbedder(12, d_in=32, seed=seed)
    metrics = retrieval_metrics(model, data, embeddings, np.arange(p), seed=seed)
    chance = chance_metrics(p)
    assert (metrics.pool_size, metrics.n_pools, metrics.n_queries) == (p, 1, 5 * p)
    # about 4 (or more) standard errors of a mean of 4,000 uniform ranks
    assert metrics.recall_at_10 == pytest.approx(chance.recall_at_10, abs=0.008)
    assert metrics.recall_at_5 == pytest.approx(chance.recall_at_5, abs=0.005)
    assert metrics.median_rank == pytest.approx(chance.median_rank, abs=30)
    assert metrics.mrr == pytest.approx(chance.mrr, abs=0.004)


def test_a_constant_model_is_exactly_chance_median():
    # W = 0 embeds every image as the zero vector: every score ties, every rank is (P + 1) / 2.
    data, embeddings, model = perfect_problem([5] * 40)
    model.weight.data[...] = 0
    metrics = retrieval_metrics(model, data, embeddings, np.arange(40))
    assert metrics.median_rank == chance_metrics(40).median_rank == 20.5
    assert metrics.recall_at_10 == 0.0
    assert metrics.mrr == pytest.approx(1 / 20.5)


# ------------------------------------------------------------------------------ retrieval_metrics


def test_a_perfect_model_is_perfect():
    # Images with 5 to 8 captions: only the first 5 (which the model gets right) are queries.
    counts = np.random.default_rng(0).integers(5, 9, size=300)
    data, embeddings, model = perfect_problem(counts)
    metrics = retrieval_metrics(model, data, embeddings, np.arange(300))
    assert isinstance(metrics, RetrievalMetrics)
    assert metrics.as_dict() == {
        **{key: 1.0 for key in METRIC_KEYS},
        "pool_size": 300,
        "n_pools": 1,
        "n_queries": 1500,
    }


def test_captions_per_image_chooses_the_first_captions():
    counts = np.array([5, 6, 7, 8] * 25)
    data, embeddings, model = perfect_problem(counts)
    # with 7 captions per image the 6th and 7th captions (ranked last, 100th) are queries too
    metrics = retrieval_metrics(model, data, embeddings, np.arange(100), captions_per_image=7)
    n_good, n_bad = 5 * 100, 0 + 1 * 25 + 2 * 25 + 2 * 25
    assert metrics.n_queries == n_good + n_bad
    assert metrics.recall_at_1 == pytest.approx(n_good / (n_good + n_bad))
    assert metrics.mrr == pytest.approx((n_good + n_bad / 100) / (n_good + n_bad))
    # with 3, only the first three
    metrics = retrieval_metrics(model, data, embeddings, np.arange(100), captions_per_image=3)
    assert (metrics.n_queries, metrics.recall_at_1) == (300, 1.0)


def test_two_pools_of_1000_from_2500_images():
    counts = np.random.default_rng(1).integers(5, 8, size=2500)
    data, embeddings, model = perfect_problem(counts)
    metrics = retrieval_metrics(model, data, embeddings, np.arange(2500))
    assert (metrics.pool_size, metrics.n_pools, metrics.n_queries) == (1000, 2, 10_000)
    assert metrics.recall_at_1 == 1.0
    # All scores tied: every caption ranks its image in the middle of a pool of 1,000 (not of
    # 2,000 or 2,500): the pools are separate.
    model.weight.data[...] = 0
    tied = retrieval_metrics(model, data, embeddings, np.arange(2500))
    assert tied.median_rank == 500.5 and tied.n_queries == 10_000


def test_pool_size_is_a_parameter():
    data, embeddings, model = perfect_problem([5] * 130)
    metrics = retrieval_metrics(model, data, embeddings, np.arange(130), pool_size=40)
    assert (metrics.pool_size, metrics.n_pools, metrics.n_queries) == (40, 3, 600)


def test_fewer_images_than_a_pool_make_one_pool_of_all():
    counts = [3, 4, 5, 6, 7] * 20  # some images have fewer than 5 captions: all of them count
    data, embeddings, model = perfect_problem(counts)
    images = np.arange(0, 100, 2)
    metrics = retrieval_metrics(model, data, embeddings, images)
    assert (metrics.pool_size, metrics.n_pools) == (50, 1)
    assert metrics.n_queries == sum(min(counts[i], 5) for i in images)
    assert metrics.recall_at_1 == 1.0


def test_single_pool_matches_a_numpy_reference():
    # A random model: with one pool the order of the images does not matter, so the figures
    # follow from brute-force ranks over all images.
    rng = np.random.default_rng(3)
    counts = rng.integers(2, 9, size=120)
    data = make_data(rng.normal(size=(120, 20)), counts)
    embeddings = unit(rng.normal(size=(data.n_captions, 6)))
    model = ImageEmbedder(6, d_in=20, seed=5)
    images = rng.choice(120, size=90, replace=False)

    image_embeddings = unit(data.descriptors[images].astype(np.float64) @ model.weight.data)
    caption, owner = first_captions(data, images)
    scores = embeddings[caption] @ image_embeddings.T
    ranks = np.array(
        [
            1 + np.sum(row > row[o]) + (np.sum(row == row[o]) - 1) / 2
            for row, o in zip(scores, owner, strict=True)
        ]
    )
    expected = summary(ranks)

    for seed in (0, 1):  # the shuffle does not matter with one pool
        metrics = retrieval_metrics(model, data, embeddings, images, seed=seed)
        assert (metrics.pool_size, metrics.n_pools, metrics.n_queries) == (90, 1, len(caption))
        for key, value in expected.items():
            assert getattr(metrics, key) == pytest.approx(value, rel=1e-9), key


def test_the_default_seed_is_0():
    # 130 images in pools of 40: the seed picks the 10 left out and the pools, so the figures
    # of a random model differ from seed to seed.
    rng = np.random.default_rng(6)
    data = make_data(rng.normal(size=(130, 8)), [5] * 130)
    embeddings = unit(rng.normal(size=(data.n_captions, 4)))
    model = ImageEmbedder(4, d_in=8, seed=1)
    images = np.arange(130)
    default = retrieval_metrics(model, data, embeddings, images, pool_size=40)
    assert default == retrieval_metrics(model, data, embeddings, images, pool_size=40, seed=0)
    assert default != retrieval_metrics(model, data, embeddings, images, pool_size=40, seed=1)


def test_two_images_make_a_pool():
    data, embeddings, model = perfect_problem([5, 5, 5])
    metrics = retrieval_metrics(model, data, embeddings, np.array([0, 2]))
    assert (metrics.pool_size, metrics.n_pools, metrics.n_queries) == (2, 1, 10)
    assert metrics.recall_at_1 == metrics.i2t_recall_at_1 == 1.0


def test_images_without_captions_are_no_image_queries():
    # All scores tied (the model maps everything to 0), 11 captions: an image's rank is 1 + half
    # of the captions not its own, 6 for the image of one caption, 4 for those of five; the
    # image of none has nothing to find and is no query.
    data, embeddings, model = perfect_problem([1, 0, 5, 5])
    model.weight.data[...] = 0
    metrics = retrieval_metrics(model, data, embeddings, np.arange(4))
    assert metrics.n_queries == 11
    assert metrics.i2t_median_rank == 4.0
    assert metrics.i2t_mrr == pytest.approx((1 / 6 + 1 / 4 + 1 / 4) / 3)


def test_retrieval_needs_two_images():
    data, embeddings, model = perfect_problem([5, 5])
    with pytest.raises(ValueError, match=r"retrieval needs at least 2 images, got 1"):
        retrieval_metrics(model, data, embeddings, np.array([1]))


# -------------------------------------------------------------------------------- triple_accuracy


def test_triple_accuracy_matches_numpy():
    rng = np.random.default_rng(4)
    data = make_data(rng.normal(size=(200, 24)), rng.integers(1, 6, size=200))
    embeddings = unit(rng.normal(size=(data.n_captions, 8)))
    model = ImageEmbedder(8, d_in=24, seed=1)
    triples = make_triples(data, np.arange(200), np.random.default_rng(0))

    W = model.weight.data.astype(np.float64)
    captions = embeddings[triples.caption]
    s_true = np.sum(captions * unit(data.descriptors[triples.true_image] @ W), axis=1)
    s_conf = np.sum(captions * unit(data.descriptors[triples.confusor] @ W), axis=1)
    assert np.min(np.abs(s_true - s_conf)) > 1e-5  # no near-tie that float32 could flip

    accuracy = triple_accuracy(model, data, embeddings, triples)
    assert accuracy == np.mean(s_true > s_conf)
    assert 0.2 < accuracy < 0.8  # a nontrivial mix
    # the mirrored triples are right exactly where these are wrong
    mirrored = Triples(triples.caption, triples.confusor, triples.true_image)
    assert triple_accuracy(model, data, embeddings, mirrored) == pytest.approx(1 - accuracy)


def test_triple_accuracy_counts_ties_as_wrong():
    data, embeddings, model = perfect_problem([5] * 4)
    same = Triples(np.arange(4), np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64))
    assert triple_accuracy(model, data, embeddings, same) == 0.0
    right = Triples(np.arange(5), np.zeros(5, dtype=np.int64), np.arange(5) % 3 + 1)
    assert triple_accuracy(model, data, embeddings, right) == 1.0


def gathered_triple_accuracy(model, data, embeddings, triples) -> float:
    """`triple_accuracy` as it was: one descriptor gathered and embedded per triple."""
    caption = model.embed_text(embeddings[triples.caption])
    sim_true = np.einsum("nd,nd->n", caption, model.embed(data.descriptors[triples.true_image]))
    sim_conf = np.einsum("nd,nd->n", caption, model.embed(data.descriptors[triples.confusor]))
    return float(np.mean(sim_true > sim_conf))


@pytest.mark.parametrize("chunk", [7, 64, metrics_module.TRIPLE_CHUNK])
@pytest.mark.parametrize("text_map", [False, True])
def test_triple_accuracy_equals_the_gathered_computation(monkeypatch, chunk, text_map):
    """Each image embedded once and captions scored in chunks: the same figure, to the bit,
    as embedding one gathered descriptor per triple (with and without a text map, chunks that
    do and do not divide the triples)."""
    monkeypatch.setattr(metrics_module, "TRIPLE_CHUNK", chunk)
    data, embeddings = toy_problem(n=150, seed=5)
    model = ImageEmbedder(12, d_in=32, seed=2, text_map=text_map)
    for seed, hard in [(0, False), (1, True)]:
        triples = validation_triples(
            data, np.arange(150), seed, caption_embeddings=embeddings, hard=hard
        )
        expected = gathered_triple_accuracy(model, data, embeddings, triples)
        assert triple_accuracy(model, data, embeddings, triples) == expected


def test_triple_accuracy_never_gathers_a_descriptor_per_triple():
    """Scoring 20,000 triples over 1,000 images (512-d descriptors) allocates well under the
    (M, 512) float32 array a per-triple gather needs (41 MB)."""
    rng = np.random.default_rng(8)
    data = make_data(rng.normal(size=(1000, 512)), np.full(1000, 20))
    embeddings = unit(rng.normal(size=(data.n_captions, 8))).astype(np.float32)
    model = ImageEmbedder(8, d_in=512, seed=1)
    triples = make_triples(data, np.arange(1000), np.random.default_rng(0))
    gathered = len(triples) * 512 * 4
    tracemalloc.start()
    try:
        accuracy = triple_accuracy(model, data, embeddings, triples)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert accuracy == gathered_triple_accuracy(model, data, embeddings, triples)
    assert peak < gathered / 4


def test_triple_accuracy_of_no_triples_is_nan():
    data, embeddings, model = perfect_problem([5] * 4)
    none = Triples(*(np.zeros(0, dtype=np.int64),) * 3)
    assert np.isnan(triple_accuracy(model, data, embeddings, none))


# ---------------------------------------------------------------------- evaluation_report, format


def toy_problem(n=300, n_classes=6, d=12, d_in=32, seed=0):
    """Learnable: descriptors are a nonlinear function of a latent (class prototype plus the
    image's own variation) plus noise; captions embed as the unit latent plus noise."""
    rng = np.random.default_rng(seed)
    prototypes = rng.normal(size=(n_classes, d))
    latent = prototypes[rng.integers(n_classes, size=n)] + 0.5 * rng.normal(size=(n, d))
    mix = rng.normal(size=(d, d_in)) / np.sqrt(d)
    descriptors = np.tanh(latent @ mix) + 0.05 * rng.normal(size=(n, d_in))
    data = make_data(descriptors, rng.integers(4, 8, size=n))
    embeddings = unit(latent[data.caption_image] + 0.3 * rng.normal(size=(data.n_captions, d)))
    return data, embeddings


# Not module-scoped: mutmut credits the functions a fixture calls to the test that sets it up,
# and would run only the first of these tests against a mutant of evaluation_report.
@pytest.fixture
def report_setup():
    data, embeddings = toy_problem()
    config = TrainConfig(recipe="course", epochs=4, learning_rate=0.05, seed=3)
    result = train(data, embeddings, config, progress=False)
    triples = evaluation_triples(data, result.val_images, 3, embeddings)
    report = evaluation_report(result.model, data, embeddings, result.val_images, triples, seed=3)
    return data, embeddings, result, report


def test_evaluation_report_structure(report_setup):
    data, _, result, report = report_setup
    val = result.val_images
    assert set(report) == {"pool_size", "n_pools", "n_queries", "val_images", "models"}
    assert list(report["models"]) == ["trained", "untrained", "chance"]
    for figures in report["models"].values():
        assert set(figures) == FIGURE_KEYS
        assert all(isinstance(v, float) for v in figures.values())
    assert report["val_images"] == len(val) == 60
    assert (report["pool_size"], report["n_pools"]) == (60, 1)
    assert report["n_queries"] == len(first_captions(data, val)[0])


def test_evaluation_report_figures(report_setup):
    data, embeddings, result, report = report_setup
    val, models = result.val_images, report["models"]
    untrained = ImageEmbedder(12, d_in=32, seed=3)  # the run's initialization
    random_triples = validation_triples(data, val, 3)
    hard_triples = validation_triples(data, val, 3, caption_embeddings=embeddings, hard=True)
    for name, model in [("trained", result.model), ("untrained", untrained)]:
        metrics = retrieval_metrics(model, data, embeddings, val, seed=3)
        for key in METRIC_KEYS:
            assert models[name][key] == getattr(metrics, key), (name, key)
        assert models[name]["triple_accuracy"] == triple_accuracy(
            model, data, embeddings, random_triples
        )
        assert models[name]["hard_triple_accuracy"] == triple_accuracy(
            model, data, embeddings, hard_triples
        )
    # the training's own validation accuracy is the report's (same seed, same fixed triples)
    assert models["trained"]["triple_accuracy"] == result.history[-1]["val_accuracy"]
    chance = chance_metrics(60)
    assert models["chance"] == {
        **{key: getattr(chance, key) for key in METRIC_KEYS},
        "triple_accuracy": 0.5,
        "hard_triple_accuracy": 0.5,
    }


def test_evaluation_report_pool_size_and_seed(report_setup):
    # pools of 20 of the 60 validation images: the seed picks them, and the untrained model
    data, embeddings, result, _ = report_setup
    val = result.val_images
    triples = evaluation_triples(data, val, 3, embeddings)
    for seed in (0, 3):
        report = evaluation_report(
            result.model, data, embeddings, val, triples, seed=seed, pool_size=20
        )
        assert (report["pool_size"], report["n_pools"]) == (20, 3)
        untrained = ImageEmbedder(12, d_in=32, seed=seed)
        for name, model in [("trained", result.model), ("untrained", untrained)]:
            metrics = retrieval_metrics(model, data, embeddings, val, pool_size=20, seed=seed)
            for key in METRIC_KEYS:
                assert report["models"][name][key] == getattr(metrics, key), (seed, name, key)
    default = evaluation_report(result.model, data, embeddings, val, triples, pool_size=20)
    assert default == evaluation_report(
        result.model, data, embeddings, val, triples, seed=0, pool_size=20
    )


def test_trained_beats_untrained_and_chance(report_setup):
    models = report_setup[3]["models"]
    trained, untrained, chance = models["trained"], models["untrained"], models["chance"]
    for key in ("recall_at_1", "recall_at_5", "recall_at_10", "mrr"):
        assert trained[key] > max(untrained[key], chance[key]) + 0.1, key
    assert trained["median_rank"] < min(untrained["median_rank"], chance["median_rank"]) / 3
    assert trained["triple_accuracy"] > 0.8 > untrained["triple_accuracy"] + 0.2
    assert trained["hard_triple_accuracy"] > untrained["hard_triple_accuracy"] + 0.2
    # hard confusors are harder
    assert trained["hard_triple_accuracy"] < trained["triple_accuracy"]


def test_evaluation_report_on_coco_1k_pools():
    counts = np.random.default_rng(2).integers(5, 8, size=2500)
    data, embeddings, model = perfect_problem(counts)
    val = np.arange(2500)
    triples = evaluation_triples(data, val, 0, embeddings)
    report = evaluation_report(model, data, embeddings, val, triples)
    assert (report["pool_size"], report["n_pools"], report["n_queries"]) == (1000, 2, 10_000)
    assert report["val_images"] == 2500
    trained = report["models"]["trained"]
    assert (trained["recall_at_1"], trained["median_rank"], trained["mrr"]) == (1.0, 1.0, 1.0)
    # triples use every caption: the model is right on exactly the first 5 of each image
    assert trained["triple_accuracy"] == pytest.approx(5 * 2500 / data.n_captions)
    assert report["models"]["chance"]["recall_at_10"] == 0.01
    assert report["models"]["chance"]["median_rank"] == 500.5

    text = format_report(report)
    assert "2 pool(s) of 1000 validation images, 10,000 caption queries" in text


def test_format_report_table(report_setup):
    report = report_setup[3]
    text = format_report(report)
    lines = text.splitlines()
    assert len(lines) == 2 + 3 + 1 + 2 + 3
    assert "1 pool(s) of 60 validation images" in lines[0]
    assert f"{report['n_queries']:,} caption queries" in lines[0]
    for title in ("R@1", "R@5", "R@10", "med.rank", "MRR", "triple acc", "hard acc"):
        assert title in lines[1]
    for line, name in zip(lines[2:5], ["trained", "untrained", "chance"], strict=True):
        assert line.split()[0] == name
        assert len(line) == len(lines[1])  # columns line up with the header
    trained = report["models"]["trained"]
    cells = lines[2].split()
    assert cells[1] == f"{trained['recall_at_1']:.1%}"
    assert cells[4] == f"{trained['median_rank']:.1f}"
    assert cells[5] == f"{trained['mrr']:.3f}"
    assert cells[6] == f"{trained['triple_accuracy']:.3f}"
    assert lines[4].split()[1:] == ["1.7%", "8.3%", "16.7%", "30.5", "0.078", "0.500", "0.500"]
    # then image -> caption, the same models
    assert lines[6].startswith("image -> caption retrieval: the same pools, 60 image queries")
    for title in ("R@1", "R@5", "R@10", "med.rank", "MRR"):
        assert title in lines[7]
    assert "triple acc" not in lines[7]
    assert [line.split()[0] for line in lines[8:]] == ["trained", "untrained", "chance"]
    assert lines[8].split()[1] == f"{trained['i2t_recall_at_1']:.1%}"


def test_format_report_of_a_hand_made_report():
    figures = {key: 0.25 for key in FIGURE_KEYS} | {"median_rank": 12.0}
    report = {
        "pool_size": 1000,
        "n_pools": 5,
        "n_queries": 25_000,
        "val_images": 5000,
        "models": {"mine": figures, "chance": figures},
    }
    lines = format_report(report).splitlines()
    assert lines[0] == (
        "caption -> image retrieval: 5 pool(s) of 1000 validation images, 25,000 caption queries"
    )
    assert lines[1] == " " * 10 + "   R@1     R@5    R@10  med.rank     MRR  triple acc  hard acc"
    assert lines[2].split() == ["mine", *["25.0%"] * 3, "12.0", *["0.250"] * 3]
    assert lines[3].startswith("chance ")
    assert lines[4] == ""
    assert lines[5] == (
        "image -> caption retrieval: the same pools, 5,000 image queries, each against its "
        "pool's captions"
    )
    assert lines[6] == " " * 10 + "   R@1     R@5    R@10  med.rank     MRR"
    assert lines[7].split() == ["mine", *["25.0%"] * 3, "0.2", "0.250"]


def test_format_report_of_undefined_figures():
    # nan: e.g. the triple accuracy of no triples; it reads "nan" in every column
    figures = dict.fromkeys(FIGURE_KEYS, float("nan"))
    report = {"pool_size": 2, "n_pools": 1, "n_queries": 0, "models": {"mine": figures}}
    lines = format_report(report).splitlines()
    assert lines[2].split() == ["mine", *["nan%"] * 3, *["nan"] * 4]
    assert lines[6].split() == ["mine", *["nan%"] * 3, "nan", "nan"]


def test_split_of_the_toy_report_is_the_training_split(report_setup):
    data, _, result, _ = report_setup
    _, val = split_images(data.n_images, seed=3)
    np.testing.assert_array_equal(result.val_images, val)
