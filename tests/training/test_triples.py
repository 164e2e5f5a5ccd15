"""Tests of `capstone.training.triples`: (caption, true image, confusor) triples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from capstone.data.coco import CocoData
from capstone.data.split import split_images
from capstone.training.triples import Triples, make_triples, validation_triples


def make_data(counts, *, d_in: int = 4, seed: int = 0) -> CocoData:
    """A CocoData whose image i has ``counts[i]`` captions (descriptors are random)."""
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    caption_image = np.repeat(np.arange(n), counts)
    m = len(caption_image)
    return CocoData(
        image_ids=np.arange(1000, 1000 + n, dtype=np.int64),
        urls=[f"http://example.invalid/{i}.jpg" for i in range(n)],
        descriptors=np.random.default_rng(seed).normal(size=(n, d_in)).astype(np.float32),
        caption_ids=np.arange(50_000, 50_000 + m, dtype=np.int64),
        captions=[f"caption {i}" for i in range(m)],
        caption_image=caption_image.astype(np.int64),
        caption_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def classes():
    """400 images in 5 latent classes; each caption = its class prototype + noise (unit rows).

    Two images of the same class have captions of cosine ~0.8, of different classes ~0.
    """
    rng = np.random.default_rng(1234)
    n, n_classes, d = 400, 5, 12
    label = rng.integers(n_classes, size=n)
    data = make_data(rng.integers(3, 7, size=n), seed=1)
    prototypes = unit(rng.normal(size=(n_classes, d)))
    embeddings = unit(
        prototypes[label[data.caption_image]] + 0.1 * rng.normal(size=(data.n_captions, d))
    )
    return data, embeddings, label


def mean_confusor_similarity(data, embeddings, triples) -> float:
    """Mean cosine of each caption with the mean caption of its confusor image."""
    centroid = (
        np.add.reduceat(embeddings, data.caption_offsets[:-1])
        / np.diff(data.caption_offsets)[:, None]
    )
    return float(np.mean(np.sum(embeddings[triples.caption] * centroid[triples.confusor], axis=1)))


# ---------------------------------------------------------------------------------- make_triples


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 6), min_size=2, max_size=25),
    subset_seed=st.integers(0, 2**32 - 1),
    hard_fraction=st.sampled_from([0.0, 0.3, 1.0]),
    n_candidates=st.integers(1, 6),
)
def test_make_triples_structure(counts, subset_seed, hard_fraction, n_candidates):
    # Images without captions are allowed (as CocoData allows them): they serve as confusors.
    data = make_data(counts)
    rng = np.random.default_rng(subset_seed)
    n_pick = int(rng.integers(2, data.n_images + 1))
    images = rng.choice(data.n_images, size=n_pick, replace=False)
    embeddings = unit(rng.normal(size=(data.n_captions, 5)))

    triples = make_triples(
        data,
        images,
        rng,
        caption_embeddings=embeddings,
        hard_fraction=hard_fraction,
        n_candidates=n_candidates,
    )

    # One triple for each caption of `images`, in caption order; no caption of other images.
    expected = [c for c in range(data.n_captions) if data.caption_image[c] in set(images.tolist())]
    assert triples.caption.tolist() == expected
    assert len(triples) == sum(counts[i] for i in images)
    for name in ("caption", "true_image", "confusor"):
        array = getattr(triples, name)
        assert array.dtype == np.int64 and array.shape == (len(triples),)
    np.testing.assert_array_equal(triples.true_image, data.caption_image[triples.caption])
    assert np.all(triples.confusor != triples.true_image)
    assert np.all(np.isin(triples.confusor, images))


def test_make_triples_confusors_stay_in_their_split(classes):
    data, embeddings, _ = classes
    train, val = split_images(data.n_images, seed=0)
    rng = np.random.default_rng(0)
    for images in (train, val):
        for hard_fraction in (0.0, 0.5, 1.0):
            t = make_triples(
                data, images, rng, caption_embeddings=embeddings, hard_fraction=hard_fraction
            )
            assert np.all(np.isin(t.true_image, images))
            assert np.all(np.isin(t.confusor, images))
            assert np.all(t.confusor != t.true_image)


def test_make_triples_is_determined_by_the_generator(classes):
    data, embeddings, _ = classes
    images = np.arange(0, data.n_images, 2)

    def run(seed):
        return make_triples(
            data,
            images,
            np.random.default_rng(seed),
            caption_embeddings=embeddings,
            hard_fraction=0.5,
        )

    a, b, c = run(3), run(3), run(4)
    for name in ("caption", "true_image", "confusor"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.confusor, c.confusor)


def test_random_confusors_are_uniform_over_the_other_images():
    # 10 images with 300 captions each: for every true image, the confusor should be uniform
    # over the 9 others. Chi-square test of the (true, confusor) table at the 1e-4 level.
    data = make_data([300] * 10)
    t = make_triples(data, np.arange(10), np.random.default_rng(0))
    table = np.zeros((10, 10))
    np.add.at(table, (t.true_image, t.confusor), 1)
    assert np.all(np.diag(table) == 0)
    off_diagonal = table[~np.eye(10, dtype=bool)].reshape(10, 9)
    chi2 = np.sum((off_diagonal - 300 / 9) ** 2 / (300 / 9))
    assert chi2 < stats.chi2.ppf(1 - 1e-4, df=10 * 8)
    # and not suspiciously regular either (e.g. a deterministic round robin)
    assert chi2 > stats.chi2.ppf(1e-4, df=10 * 8)


def test_random_confusors_ignore_caption_embeddings(classes):
    data, embeddings, label = classes
    images = np.arange(data.n_images)
    t = make_triples(data, images, np.random.default_rng(0), caption_embeddings=embeddings)
    same_class = np.mean(label[t.confusor] == label[t.true_image])
    class_size = np.bincount(label)
    expected = np.mean((class_size[label[t.true_image]] - 1) / (len(images) - 1))
    assert abs(same_class - expected) < 0.03  # ~ 1/5: chance


def test_hard_confusors_are_the_most_similar_image_brute_force():
    # 12 images, all captions of an image share one embedding, so which caption stands for a
    # candidate does not matter; with 400 candidates among 11 other images every image is a
    # candidate (a miss has probability ~1e-14 per row), so the hard confusor must be the
    # brute-force most similar other image.
    rng = np.random.default_rng(5)
    counts = rng.integers(1, 5, size=12)
    data = make_data(counts)
    image_embedding = unit(rng.normal(size=(12, 6)))
    embeddings = image_embedding[data.caption_image]
    t = make_triples(
        data,
        np.arange(12),
        np.random.default_rng(0),
        caption_embeddings=embeddings,
        hard_fraction=1.0,
        n_candidates=400,
    )
    expected = []
    for c in t.caption:
        own = data.caption_image[c]
        others = [j for j in range(12) if j != own]
        expected.append(max(others, key=lambda j: float(embeddings[c] @ image_embedding[j])))
    assert t.confusor.tolist() == expected


def test_hard_fraction_is_the_fraction_of_hard_rows():
    # Same setting as above: a hard row gets the most similar image, a random row gets it 1/11
    # of the time. With hard_fraction=0.5 about 0.5 + 0.5 / 11 = 0.545 of the rows get it.
    rng = np.random.default_rng(6)
    data = make_data([100] * 12)
    image_embedding = unit(rng.normal(size=(12, 6)))
    embeddings = image_embedding[data.caption_image]
    similarity = image_embedding @ image_embedding.T
    np.fill_diagonal(similarity, -np.inf)
    most_similar = np.argmax(similarity, axis=1)

    def hit_rate(hard_fraction):
        t = make_triples(
            data,
            np.arange(12),
            np.random.default_rng(1),
            caption_embeddings=embeddings,
            hard_fraction=hard_fraction,
            n_candidates=400,
        )
        return np.mean(t.confusor == most_similar[t.true_image])

    assert hit_rate(1.0) == 1.0
    assert abs(hit_rate(0.5) - (0.5 + 0.5 / 11)) < 0.05  # std ~0.014
    assert abs(hit_rate(0.0) - 1 / 11) < 0.03  # std ~0.008


def test_hard_confusors_sound_like_the_caption(classes):
    data, embeddings, label = classes
    train, _ = split_images(data.n_images, seed=0)

    def triples(hard_fraction, n_candidates=5, seed=0):
        return make_triples(
            data,
            train,
            np.random.default_rng(seed),
            caption_embeddings=embeddings,
            hard_fraction=hard_fraction,
            n_candidates=n_candidates,
        )

    def same_class(t):
        return np.mean(label[t.confusor] == label[t.true_image])

    random, hard, hard_10 = triples(0.0), triples(1.0), triples(1.0, 10)
    one_candidate = triples(1.0, 1, seed=1)
    # A random other image is of the caption's class with probability p (~0.2); a hard
    # confusor is whenever one of its K candidates is: 1 - (1 - p)**K (a same-class caption
    # is always more similar than any other class's). Standard errors are ~0.012.
    class_size = np.bincount(label[train], minlength=label.max() + 1)
    p = (class_size[label[random.true_image]] - 1) / (len(train) - 1)
    assert same_class(random) == pytest.approx(np.mean(p), abs=0.03)
    assert same_class(hard) == pytest.approx(np.mean(1 - (1 - p) ** 5), abs=0.04)
    assert same_class(hard_10) == pytest.approx(np.mean(1 - (1 - p) ** 10), abs=0.03)
    sim = {
        name: mean_confusor_similarity(data, embeddings, t)
        for name, t in [("random", random), ("hard", hard), ("hard_10", hard_10)]
    }
    assert sim["hard"] > sim["random"] + 0.35
    assert sim["hard_10"] > sim["hard"] + 0.1
    # A single candidate is no choice at all: it behaves like a random confusor.
    assert same_class(one_candidate) == pytest.approx(same_class(random), abs=0.04)
    assert mean_confusor_similarity(data, embeddings, one_candidate) == pytest.approx(
        sim["random"], abs=0.04
    )


def test_hard_confusors_compare_a_random_caption_of_each_candidate():
    # The query (image 0) points along x. Image 1's first caption points away, its second
    # along x; image 2's only caption is in between. Each candidate is represented by one
    # of its captions at random, so among 400 candidates some copy of image 1 shows its
    # second caption and wins; judging image 1 by its first caption only, image 2 would win.
    data = make_data([1, 2, 1])
    embeddings = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
    for seed in range(5):
        t = make_triples(
            data,
            np.arange(3),
            np.random.default_rng(seed),
            caption_embeddings=embeddings,
            hard_fraction=1.0,
            n_candidates=400,
        )
        assert t.confusor[t.true_image == 0].tolist() == [1]
    # With a single candidate both are drawn, uniformly.
    t = make_triples(
        make_data([400, 2, 1]),
        np.arange(3),
        np.random.default_rng(0),
        caption_embeddings=np.concatenate([np.tile([1.0, 0.0], (400, 1)), embeddings[1:]]),
        hard_fraction=1.0,
        n_candidates=1,
    )
    assert np.mean(t.confusor[:400] == 1) == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("last_images_captionless", [1, 3])
def test_hard_confusors_skip_images_without_captions(last_images_captionless):
    # Images 0..5 have captions, the last ones none. A captionless candidate has nothing to
    # compare with: it must neither crash (indexing past the last caption) nor borrow the
    # caption of the next image; with 400 candidates the winner is always a captioned image.
    counts = [2] * 6 + [0] * last_images_captionless
    data = make_data(counts)
    rng = np.random.default_rng(0)
    image_embedding = unit(rng.normal(size=(len(counts), 5)))
    embeddings = image_embedding[data.caption_image]
    t = make_triples(
        data,
        np.arange(len(counts)),
        rng,
        caption_embeddings=embeddings,
        hard_fraction=1.0,
        n_candidates=400,
    )
    assert np.all(t.confusor < 6)
    sims = embeddings @ image_embedding[:6].T
    sims[np.arange(len(t)), t.true_image] = -np.inf
    np.testing.assert_array_equal(t.confusor, np.argmax(sims, axis=1))


def test_make_triples_accepts_a_list_of_images():
    data = make_data([2, 2, 2])
    t = make_triples(data, [0, 2], np.random.default_rng(0))
    assert t.caption.tolist() == [0, 1, 4, 5]
    assert t.confusor.tolist() == [2, 2, 0, 0]


@pytest.mark.parametrize("hard_fraction", [-0.1, 1.01, float("nan")])
def test_make_triples_rejects_bad_hard_fraction(hard_fraction):
    data = make_data([2, 2, 2])
    with pytest.raises(ValueError, match=r"`hard_fraction` must lie in \[0, 1\]"):
        make_triples(
            data,
            np.arange(3),
            np.random.default_rng(0),
            caption_embeddings=np.ones((6, 2)),
            hard_fraction=hard_fraction,
        )


@pytest.mark.parametrize("n_candidates", [0, -1, 2.5, "3", None])
def test_make_triples_rejects_bad_n_candidates(n_candidates):
    data = make_data([2, 2, 2])
    with pytest.raises(ValueError, match=r"`n_candidates` must be a positive integer"):
        make_triples(
            data,
            np.arange(3),
            np.random.default_rng(0),
            caption_embeddings=np.ones((6, 2)),
            hard_fraction=0.5,
            n_candidates=n_candidates,
        )


def test_hard_confusors_need_caption_embeddings():
    data = make_data([2, 2, 2])
    with pytest.raises(ValueError, match=r"hard confusors need `caption_embeddings`"):
        make_triples(data, np.arange(3), np.random.default_rng(0), hard_fraction=0.1)


@pytest.mark.parametrize("images", [[], [1], np.array([2])])
def test_make_triples_needs_two_images(images):
    data = make_data([2, 2, 2])
    with pytest.raises(ValueError, match=r"`images` must hold at least 2 images"):
        make_triples(data, images, np.random.default_rng(0))


def test_triples_take_and_len():
    t = Triples(np.arange(5), np.arange(10, 15), np.arange(20, 25))
    assert len(t) == 5
    sub = t.take(np.array([4, 0]))
    assert (sub.caption.tolist(), sub.true_image.tolist(), sub.confusor.tolist()) == (
        [4, 0],
        [14, 10],
        [24, 20],
    )
    assert len(t.take(slice(3, 10))) == 2


# ---------------------------------------------------------------------------- validation_triples


def test_validation_triples_are_fixed_for_a_seed(classes):
    data, embeddings, label = classes
    _, val = split_images(data.n_images, seed=0)

    def run(seed, hard):
        return validation_triples(data, val, seed, caption_embeddings=embeddings, hard=hard)

    for hard in (False, True):
        a, b = run(0, hard), run(0, hard)
        for name in ("caption", "true_image", "confusor"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(a.confusor, run(1, hard).confusor)

    random, hard = run(0, False), run(0, True)
    np.testing.assert_array_equal(random.caption, hard.caption)
    assert not np.array_equal(random.confusor, hard.confusor)
    # hard=True: every confusor is hard (5 candidates)
    assert np.mean(label[hard.confusor] == label[hard.true_image]) > 0.55
    assert np.mean(label[random.confusor] == label[random.true_image]) < 0.3
    # random validation triples do not need embeddings and ignore them
    plain = validation_triples(data, val, 0)
    np.testing.assert_array_equal(plain.confusor, random.confusor)


def test_validation_triples_differ_from_training_streams(classes):
    # The validation stream is its own: not the generator of any (seed, epoch) training stream.
    data, _, _ = classes
    _, val = split_images(data.n_images, seed=0)
    v = validation_triples(data, val, 0)
    for epoch in range(1, 4):
        t = make_triples(data, val, np.random.default_rng([0, epoch]))
        assert not np.array_equal(t.confusor, v.confusor)


def test_hard_validation_triples_need_caption_embeddings(classes):
    data, _, _ = classes
    with pytest.raises(ValueError, match=r"`caption_embeddings`"):
        validation_triples(data, np.arange(10), 0, hard=True)
