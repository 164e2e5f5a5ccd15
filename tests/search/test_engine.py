"""Tests for `capstone.search.engine`: every query against a brute-force NumPy reference."""

from collections import Counter
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from capstone.data import minicoco
from capstone.dataset import load_dataset
from capstone.embeddings.image import ImageEmbedder
from capstone.search.database import ImageDatabase
from capstone.search.engine import STOP_WORDS, SearchEngine, ignored_words
from capstone.text.tokens import tokenize


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAPSTONE_HOME", str(tmp_path_factory.mktemp("home")))
        folder = tmp_path_factory.mktemp("minicoco")
        minicoco.generate(folder, 300, seed=1)
        ds = load_dataset(folder)
    model = ImageEmbedder(ds.glove.dim, seed=0)
    data = ds.data
    half = np.arange(0, data.n_images, 2)  # a database of every other image, as a val split
    db = ImageDatabase.build(model, data.image_ids[half], data.descriptors[half])
    return SearchEngine(ds, model, db)


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def brute_force(vectors, ids, query, k, exclude=()):
    """(ids, scores) of the k rows of ``vectors`` nearest ``query`` by cosine, by a full sort."""
    scores = unit(vectors) @ unit(query)
    keep = ~np.isin(ids, list(exclude))
    ids, scores = np.asarray(ids)[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")[:k]
    return ids[order].tolist(), scores[order]


def check(results, expected):
    ids, scores = expected
    assert [r.image_id for r in results] == ids
    np.testing.assert_allclose([r.score for r in results], scores, atol=1e-5)


def db_embeddings(engine):
    model, data, db = engine.model, engine.dataset.data, engine.database
    return model.embed(data.descriptors[data.image_index(db.image_ids)])


@settings(
    deadline=None, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), k=st.integers(1, 200))
def test_text_search_matches_brute_force(engine, data, k):
    captions = engine.dataset.data.captions
    text = captions[data.draw(st.integers(0, len(captions) - 1), label="caption")]
    results = engine.search(text, k=k)
    q = engine.dataset.text.embed([text])[0]
    check(results, brute_force(db_embeddings(engine), engine.database.image_ids, q, k))
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert len(results) == min(k, len(engine.database))


def test_results_carry_url_and_captions(engine):
    data = engine.dataset.data
    for r in engine.search("a dog on a beach", k=5):
        row = data.image_index(np.array([r.image_id]))[0]
        assert r.url == data.urls[row] and r.url.startswith("http")
        assert list(r.captions) == list(data.caption_texts_of_image(row))
        assert len(r.captions) >= 5


def test_k_larger_than_the_database_returns_every_image(engine):
    results = engine.search("a cat", k=10_000)
    assert sorted(r.image_id for r in results) == sorted(engine.database.image_ids.tolist())


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3"])
def test_bad_k(engine, k):
    with pytest.raises(ValueError, match="`k`"):
        engine.search("a cat", k=k)


@pytest.mark.parametrize(
    "query",
    [
        lambda engine, image_id, k: engine.similar(image_id, k, space="descriptor"),
        lambda engine, image_id, k: engine.tags(image_id, k),
        lambda engine, image_id, k: engine.similar_words("dog", k),
    ],
    ids=["similar-descriptors", "tags", "similar-words"],
)
def test_every_k_is_checked_and_named(engine, query):
    image_id = int(engine.database.image_ids[0])
    with pytest.raises(ValueError) as refused:
        query(engine, image_id, 0)
    assert str(refused.value) == "`k` must be a positive integer, got 0"


@pytest.mark.parametrize("text", ["", "   ", "!!!", "qwzxv blorptang", 42, None])
def test_bad_queries_are_clear_errors(engine, text):
    with pytest.raises((ValueError, TypeError), match=r"query|text|string"):
        engine.search(text)


def test_search_batch_equals_single_searches(engine):
    texts = ["a dog on a beach", "a pizza on a table", "two giraffes"]
    for batch, text in zip(engine.search_batch(texts, k=7), texts, strict=True):
        single = engine.search(text, k=7)
        # Matrix products may round differently from matrix-vector ones: compare to 1e-6.
        assert [r.image_id for r in batch] == [r.image_id for r in single]
        np.testing.assert_allclose([r.score for r in batch], [r.score for r in single], atol=1e-6)
    with pytest.raises(ValueError, match="qwzxv"):
        engine.search_batch(["a dog", "qwzxv"], k=3)


def test_similar_in_semantic_space(engine):
    db = engine.database
    image_id = int(db.image_ids[3])
    results = engine.similar(image_id, k=8)
    E = db_embeddings(engine)
    check(results, brute_force(E, db.image_ids, E[3], 8, exclude=[image_id]))
    assert image_id not in [r.image_id for r in results]


def test_similar_for_an_image_outside_the_database(engine):
    data, db = engine.dataset.data, engine.database
    outside = int(data.image_ids[1])  # odd rows are not in the database
    assert outside not in db
    q = engine.model.embed(data.descriptors[1:2])[0]
    check(engine.similar(outside, k=5), brute_force(db_embeddings(engine), db.image_ids, q, 5))


def test_similar_in_descriptor_space_ranks_every_image(engine):
    data = engine.dataset.data
    image_id = int(data.image_ids[5])
    expected = brute_force(data.descriptors, data.image_ids, data.descriptors[5], 6, [image_id])
    check(engine.similar(image_id, k=6, space="descriptor"), expected)


def test_similar_bad_space_and_unknown_image(engine):
    with pytest.raises(ValueError, match="space"):
        engine.similar(int(engine.database.image_ids[0]), space="pixels")
    with pytest.raises(KeyError, match="123456789"):
        engine.similar(123456789)


@pytest.mark.parametrize("space", ["semantic", "descriptor"])
def test_a_photo_descriptor_is_searched_like_a_dataset_image(engine, space):
    data = engine.dataset.data
    image_id = int(engine.database.image_ids[5])
    descriptor = data.descriptor(image_id)
    by_id = engine.similar(image_id, k=6, space=space)
    by_descriptor = engine.similar_to_descriptor(descriptor[None], 6, space=space,
                                                 exclude=[image_id])  # fmt: skip
    assert [r.image_id for r in by_descriptor] == [r.image_id for r in by_id]
    # without excluding it, the image itself comes first with cosine 1
    first = engine.similar_to_descriptor(descriptor, 1, space=space)[0]
    assert first.image_id == image_id and first.score == pytest.approx(1.0, abs=1e-5)
    tags = engine.tags_of_descriptor(descriptor, 4)
    assert [w for w, _ in tags] == [w for w, _ in engine.tags(image_id, 4)]


def test_combined_queries(engine):
    text = engine.dataset.text
    E, ids = db_embeddings(engine), engine.database.image_ids
    q = text.embed(["a dog"])[0] + text.embed(["a beach"])[0] - text.embed(["sand"])[0]
    check(engine.combined(["a dog", "a beach"], ["sand"], k=9), brute_force(E, ids, q, 9))
    image_id = int(ids[2])
    q = E[2] / np.linalg.norm(E[2]) + text.embed(["snow"])[0]
    check(engine.combined(["snow"], image_id=image_id, k=4), brute_force(E, ids, q, 4, [image_id]))


def test_weighted_terms_are_the_weighted_sum(engine):
    text = engine.dataset.text
    E, ids = db_embeddings(engine), engine.database.image_ids
    terms = [(2.0, "a dog"), (1.0, "a beach"), (-0.5, "sand")]
    q = engine.terms_vector(terms)
    expected = sum(w * text.embed([t])[0] for w, t in terms)
    np.testing.assert_allclose(q, expected, atol=1e-6)
    check(engine.search_vector(q, 7), brute_force(E, ids, expected, 7))
    assert not engine.terms_vector([]).any()


def test_rank_of_a_vector_is_the_rank_of_its_text(engine):
    image_id = int(engine.database.image_ids[3])
    q = engine.text_vector("a dog on a beach")
    scaled, of_text = (
        engine.rank_of_vector(5 * q, image_id),
        engine.rank_of("a dog on a beach", image_id),
    )
    assert (scaled.rank, scaled.n_images) == (of_text.rank, of_text.n_images)
    assert scaled.score == pytest.approx(of_text.score, abs=1e-6)
    scores = engine.database.scores(q)
    own = scores[engine.database.row(image_id)]
    assert engine.rank_of_vector(q, image_id).rank == 1 + np.count_nonzero(scores > own)


def test_combined_bad_inputs(engine):
    with pytest.raises(TypeError, match="sequences"):
        engine.combined("a dog")
    with pytest.raises(ValueError) as refused:
        engine.combined()
    assert str(refused.value) == "the query is empty: give at least one term or image"


def test_tags_are_nearest_caption_words(engine):
    ds, db = engine.dataset, engine.database
    image_id = int(db.image_ids[0])
    tags = engine.tags(image_id, k=6)
    vocabulary = set(ds.text.idf.words)
    words = engine.tag_words
    assert set(words) <= vocabulary and not set(words) & STOP_WORDS
    assert all(w.isalpha() and w in ds.glove for w in words)
    vectors, _ = ds.glove.lookup(words)
    expected_words, expected_scores = brute_force(
        vectors, np.array(words), db.embedding(image_id), 6
    )
    assert [w for w, _ in tags] == expected_words
    np.testing.assert_allclose([s for _, s in tags], expected_scores, atol=1e-5)


def test_similar_words(engine):
    ds = engine.dataset
    words = engine.tag_words
    vectors, _ = ds.glove.lookup(words)
    got = engine.similar_words("Puppy ", k=5)
    expected_words, expected_scores = brute_force(
        vectors, np.array(words), ds.glove["puppy"], 5, exclude=["puppy"]
    )
    assert [w for w, _ in got] == expected_words
    np.testing.assert_allclose([s for _, s in got], expected_scores, atol=1e-5)
    with pytest.raises(KeyError, match="qwzxvblorp"):
        engine.similar_words("qwzxvblorp")
    with pytest.raises(ValueError, match="word"):
        engine.similar_words("  ")


def test_model_dimension_must_match_the_word_vectors(engine):
    with pytest.raises(ValueError, match="dimensions"):
        SearchEngine(engine.dataset, ImageEmbedder(engine.dataset.glove.dim + 1, seed=0))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((None, "model"), "`dataset` must be a Dataset, got None"),
        (("dataset", None), "`model` must be an ImageEmbedder, got None"),
        (("dataset", "model", "db"), "`database` must be an ImageDatabase or None, got str 'db'"),
    ],
)
def test_arguments_of_another_type_are_named(engine, arguments, message):
    given = {"dataset": engine.dataset, "model": engine.model}
    with pytest.raises(TypeError) as refused:
        SearchEngine(*[given.get(a, a) if isinstance(a, str) else a for a in arguments])
    assert str(refused.value) == message


def test_search_batch_refuses_one_string(engine):
    with pytest.raises(TypeError, match=r"^`texts` must be a list, tuple or numpy.ndarray, got "
                       r"str 'a dog': a list of query texts, even for one$"):  # fmt: skip
        engine.search_batch("a dog")


def test_a_query_with_a_photo_term_is_the_weighted_sum(engine, tmp_path, monkeypatch):
    """``"2:a dog + ./pool.jpg - sand"``: the photo's descriptor, embedded by the model,
    enters the sum with its weight (the describer stands in for ResNet-18)."""
    (tmp_path / "pool.jpg").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    descriptor = np.random.default_rng(3).normal(size=(1, 512)).astype(np.float32)
    described = []

    def describe(path):
        described.append(path)
        return descriptor

    text, E, ids = engine.dataset.text, db_embeddings(engine), engine.database.image_ids
    expected = (
        2 * text.embed(["a dog"])[0]
        + engine.model.embed(descriptor)[0]
        - 0.5 * text.embed(["sand"])[0]
    )
    query = "2:a dog + ./pool.jpg - .5:sand"
    np.testing.assert_allclose(engine.query_vector(query, describe=describe), expected, atol=1e-5)
    check(engine.search(query, k=6, describe=describe), brute_force(E, ids, expected, 6))
    assert described == [Path("pool.jpg")] * 2
    rank = engine.rank_of(query, int(ids[0]), describe=describe)
    assert rank.rank == engine.rank_of_vector(expected, int(ids[0])).rank


def test_a_photo_term_without_a_describer_says_what_it_needs(engine, tmp_path, monkeypatch):
    (tmp_path / "pool.jpg").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as refused:
        engine.search("a dog + ./pool.jpg")
    assert str(refused.value) == (
        "the photo term 'pool.jpg' needs a photo describer: pass "
        "describe=PhotoDescriber(weights).describe (capstone.photos.describer)"
    )


@pytest.mark.parametrize("query", ["a dog - a dog", [(1.0, "a dog"), (-1.0, "a dog")]])
def test_terms_that_cancel_out_are_named(engine, query):
    message = "the terms of 'a dog - a dog' cancel out: nothing is left to search"
    with pytest.raises(ValueError, match=message):
        engine.query_vector(query)


def test_a_weighted_query_is_parsed_by_search(engine):
    terms = [(2.0, "a dog"), (1.0, "a beach"), (-1.0, "sand")]
    expected = engine.search_vector(engine.terms_vector(terms), 5)
    assert engine.search("2:a dog + a beach - sand", k=5) == expected


def test_default_result_counts(engine):
    """10 images or words per query, 5 tags per image, unless k says otherwise."""
    image_id = int(engine.database.image_ids[0])
    descriptor = engine.dataset.data.descriptor(image_id)
    assert len(engine.search("a dog")) == 10
    assert len(engine.search_vector(engine.text_vector("a dog"))) == 10
    assert [len(r) for r in engine.search_batch(["a dog", "a beach"])] == [10, 10]
    assert len(engine.combined(["a dog"])) == 10
    assert len(engine.similar(image_id)) == 10
    assert len(engine.similar_to_descriptor(descriptor)) == 10
    assert len(engine.similar(image_id, space="descriptor")) == 10
    assert len(engine.similar_words("dog")) == 10
    assert len(engine.tags(image_id)) == 5
    assert len(engine.tags_of_descriptor(descriptor)) == 5


@pytest.mark.parametrize("exact", [None, True, False])
def test_every_query_passes_exact_to_the_database(engine, monkeypatch, exact):
    """Approximate by default; ``exact=True`` reaches the database's scan whatever the query."""
    db, asked = engine.database, []

    def recorder(method):
        def record(*args, **kwargs):
            asked.append(kwargs["exact"])
            return method(*args, **kwargs)

        return record

    monkeypatch.setattr(db, "query", recorder(db.query))
    monkeypatch.setattr(db, "query_batch", recorder(db.query_batch))
    image_id = int(db.image_ids[0])
    descriptor = engine.dataset.data.descriptor(image_id)
    flag = {} if exact is None else {"exact": exact}
    queries = [
        lambda: engine.search("a dog", 3, **flag),
        lambda: engine.search_vector(engine.text_vector("a dog"), 3, **flag),
        lambda: engine.search_batch(["a dog"], 3, **flag),
        lambda: engine.combined(["a dog"], k=3, **flag),
        lambda: engine.similar(image_id, 3, **flag),
        lambda: engine.similar_to_descriptor(descriptor, 3, **flag),
    ]
    for query in queries:
        asked.clear()
        query()
        assert asked and set(asked) == {bool(exact)}


def test_terms_vector_describes_photo_terms_with_the_describer_given(engine):
    descriptor = np.random.default_rng(4).normal(size=(1, 512)).astype(np.float32)
    q = engine.terms_vector([(2.0, Path("pool.jpg"))], lambda path: descriptor)
    assert q.dtype == np.float32
    np.testing.assert_allclose(q, 2 * engine.model.embed(descriptor)[0], atol=1e-6)


def test_a_rank_names_its_image_as_an_int(engine):
    image_id = engine.database.image_ids[1]  # a NumPy integer
    rank = engine.rank_of_vector(engine.text_vector("a dog"), image_id)
    assert rank.image_id == image_id and type(rank.image_id) is int


def test_combined_refuses_one_string_for_add_or_subtract(engine):
    message = "`add` and `subtract` must be sequences of texts, not one string"
    for arguments in [{"add": "a dog"}, {"add": ["a dog"], "subtract": "sand"}]:
        with pytest.raises(TypeError) as refused:
            engine.combined(**arguments)
        assert str(refused.value) == message


def test_ignored_words_are_the_words_of_text_terms_that_add_nothing(engine):
    text = engine.dataset.text
    terms = [(1.0, "a dog qwzxvblorp"), (2.0, Path("pool.jpg")), (-1.0, "sand zzqqxj")]
    assert ignored_words(text, terms) == [
        *text.known_words("a dog qwzxvblorp")[1],
        *text.known_words("sand zzqqxj")[1],
    ]
    assert "qwzxvblorp" in ignored_words(text, terms) and "zzqqxj" in ignored_words(text, terms)


def test_rank_and_score_are_the_databases_own(engine):
    """A rank counts the images the database scores strictly higher, by the scores search
    shows: a dot product of the image's embedding with the query of its own rounds
    differently, and then an image of an equal score (a duplicate photo: images 20 + j and j
    here) ranked above or below it by chance."""
    data, model = engine.dataset.data, engine.model
    ids = data.image_ids[:40]
    descriptors = data.descriptors[:40].copy()
    descriptors[20:] = descriptors[:20]
    twins = SearchEngine(engine.dataset, model, ImageDatabase.build(model, ids, descriptors))
    rng = np.random.default_rng(5)
    for _ in range(50):
        q = rng.normal(size=model.d)
        row = int(rng.integers(0, 40))
        rank = twins.rank_of_vector(q, int(ids[row]))
        scores = twins.database.scores(q)
        assert rank.score == float(scores[row])
        assert rank.rank == 1 + np.count_nonzero(np.delete(scores, row) > scores[row])


def test_the_default_space_is_semantic(engine):
    image_id = int(engine.database.image_ids[0])
    descriptor = engine.dataset.data.descriptor(image_id)
    assert engine.similar(image_id, 5) == engine.similar(image_id, 5, space="semantic")
    assert engine.similar_to_descriptor(descriptor, 5) == engine.similar_to_descriptor(
        descriptor, 5, space="semantic"
    )


def test_descriptor_space_scores_are_cosines_and_zero_for_an_all_zero_descriptor(
    engine, monkeypatch
):
    data = engine.dataset.data
    saved = data.descriptors[:2].copy()
    monkeypatch.setattr(engine, "_descriptor_norms", None)  # recomputed from the rows below
    try:
        data.descriptors[0] = 0  # a blank photo's
        data.descriptors[1] *= 1e-3  # a norm below 1
        query = data.descriptors[2]
        results = engine.similar_to_descriptor(query, k=data.n_images, space="descriptor")
        got = {r.image_id: r.score for r in results}
        assert got[int(data.image_ids[0])] == 0
        for row in (1, 3):
            expected = unit(data.descriptors[row]) @ unit(query)
            assert got[int(data.image_ids[row])] == pytest.approx(expected, abs=1e-6)
    finally:
        data.descriptors[:2] = saved


def test_a_new_engine_searches_every_image_and_tags_with_caption_words(engine):
    """Built here rather than by the module's fixture: mutmut credits what a fixture calls to
    the first test using it only."""
    ds, model, data = engine.dataset, engine.model, engine.dataset.data
    fresh = SearchEngine(ds, model)  # no database given: every image of the dataset
    assert fresh.database.image_ids.tolist() == data.image_ids.tolist()
    np.testing.assert_allclose(
        fresh.database.embedding(int(data.image_ids[1])), model.embed(data.descriptors[1:2])[0],
        atol=1e-6,
    )  # fmt: skip
    captions_with = Counter(w for caption in data.captions for w in set(tokenize(caption)))
    for min_count in (5, 1, 40):
        tagger = SearchEngine(ds, model, fresh.database, min_count=min_count)
        expected = [
            w for w in ds.text.idf.words
            if captions_with[w] >= min_count and w.isalpha() and w not in STOP_WORDS
            and w in ds.glove
        ]  # fmt: skip
        assert tagger.tag_words == expected
        if min_count == 5:
            assert engine.tag_words == expected  # the default
        if min_count == 40:
            assert 0 < len(expected) < len(fresh.tag_words)  # a bound that leaves words out
    vectors, _ = ds.glove.lookup(fresh.tag_words)
    np.testing.assert_allclose(
        fresh.tag_vectors, model.embed_text(unit(vectors)).astype(np.float32), atol=1e-6
    )
    image_id = int(data.image_ids[0])
    assert [r.image_id for r in fresh.similar(image_id, 3, space="descriptor")] == [
        r.image_id for r in engine.similar(image_id, 3, space="descriptor")
    ]
    assert fresh.similar_words("dog", 3) == engine.similar_words("dog", 3)
