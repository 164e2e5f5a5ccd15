"""Tests for `capstone.dataset`: files in, caption embeddings out, from each kind of source."""

import pickle

import numpy as np
import pytest

from capstone.data import minicoco, paths
from capstone.data.paths import CAPTIONS_FILE, FEATURES_FILE, GLOVE_FILE
from capstone.dataset import DemoSizeMismatch, load_dataset
from capstone.text.tokens import tokenize


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A course-format folder (mini-COCO, 60 images, 2 without descriptors) with an 8-d GloVe."""
    folder = tmp_path_factory.mktemp("course")
    info = minicoco.generate(folder, 60, seed=2)
    with open(info["features"], "rb") as f:
        features = pickle.load(f)
    with open(info["features"], "wb") as f:
        pickle.dump(dict(list(features.items())[2:]), f)
    captions = info["captions"].read_text()
    words = sorted({w for w in tokenize(captions) if w.isalpha()})
    vectors = np.random.default_rng(0).standard_normal((len(words), 8))
    lines = [f"{len(words)} 8"] + [
        w + " " + " ".join(f"{v:.5f}" for v in row) for w, row in zip(words, vectors, strict=True)
    ]
    (folder / GLOVE_FILE).write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def no_cogworks(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "COGWORKS_CACHE", tmp_path / "no_cog_data")


def test_explicit_folder_with_its_glove_file(folder):
    ds = load_dataset(folder)
    assert ds.files.source == "argument" and ds.files.glove == folder / GLOVE_FILE
    assert ds.glove.dim == 8 and ds.caption_embeddings.shape == (ds.data.n_captions, 8)
    assert ds.caption_embeddings.dtype == np.float32
    # Rows align with the captions and are what the text embedder gives each caption alone.
    for i in (0, 7, ds.data.n_captions - 1):
        np.testing.assert_allclose(
            ds.caption_embeddings[i], ds.text.embed([ds.data.captions[i]])[0], atol=1e-6
        )
    norms = np.linalg.norm(ds.caption_embeddings, axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1, rtol=1e-5)


def test_info_and_describe(folder):
    ds = load_dataset(folder)
    assert ds.info() == {
        "glove": ds.glove.source,
        "data_fingerprint": ds.data.fingerprint,
        "data_source": "argument",
        "data_folder": str(folder),
    }
    line = ds.describe()
    assert str(folder) in line and f"{ds.data.n_images:,} images" in line
    assert "d=8" in line and "embedded demo" not in line
    assert "(512-d descriptors)" in line
    assert ds.data.n_images == 58 and ds.data.n_dropped_images == 2
    assert "dropped 2 images without descriptors and their 10 captions" in line


def test_capstone_data_env_var(folder, monkeypatch, no_cogworks):
    monkeypatch.setenv("CAPSTONE_DATA", str(folder))
    assert load_dataset().files.source == "CAPSTONE_DATA"


def test_explicit_glove_argument_wins(folder, tmp_path):
    glove = tmp_path / "tiny.w2v"
    glove.write_text("2 3\ndog 1 0 0\ncat 0 1 0\n")
    ds = load_dataset(folder, glove=glove)
    assert ds.glove.dim == 3 and len(ds.glove) == 2


def test_demo_is_generated_on_first_use(monkeypatch, no_cogworks, capsys):
    ds = load_dataset(demo_images=40, verbose=True)  # conftest's CAPSTONE_HOME is empty
    assert ds.files.is_demo and ds.files.captions == paths.demo_dir() / CAPTIONS_FILE
    assert ds.data.n_images + ds.data.n_dropped_images == 40
    assert ds.glove.dim == 50  # the embedded GloVe 6B 50-d
    err = capsys.readouterr().err
    assert "generating the demo dataset (40 images)" in err and "embedded demo" in err
    before = ds.files.captions.read_bytes()
    again = load_dataset(demo=True)  # present: not generated again, whatever its size
    assert again.data.n_images == ds.data.n_images
    assert load_dataset(demo=True, demo_images=40).data.n_images == ds.data.n_images
    assert ds.files.captions.read_bytes() == before


def test_a_demo_of_another_size_than_the_present_one_is_an_error(no_cogworks):
    ds = load_dataset(demo=True, demo_images=40)
    folder = ds.files.captions.parent
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(DemoSizeMismatch) as info:
        load_dataset(demo=True, demo_images=50)  # the notebook's case: DEMO_IMAGES = 5_000
    assert str(info.value) == (
        f"the demo in {folder} has 40 images already, not 50 (its runs depend on it); remove "
        "that folder, or set CAPSTONE_HOME to another folder, to generate 50"
    )
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_the_demo_command_names_its_flag_for_another_size(no_cogworks, capsys):
    from capstone.frontends.cli import main

    folder = load_dataset(demo=True, demo_images=40).files.captions.parent
    assert main(["demo", "--images", "50", "--run", "other"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --images 50: the demo in {folder} has 40 images already")
    assert not (paths.runs_dir() / "other").exists()


@pytest.mark.parametrize("present", [False, True])
def test_a_huge_demo_is_refused_before_anything_is_allocated(no_cogworks, capsys, present):
    from capstone.frontends.cli import main

    if present:
        load_dataset(demo=True, demo_images=40)
    before = sorted(paths.data_home().rglob("*"))
    refused = r"`n_images` must be a whole number from 10 to 200,000 \(the generator"
    with pytest.raises(ValueError, match=refused):
        load_dataset(demo=True, demo_images=10**11)
    assert main(["demo", "--images", str(10**11)]) == 2
    assert capsys.readouterr().err == (
        "error: `n_images` must be a whole number from 10 to 200,000 (the generator needs about "
        "10 KB of memory "
        "per image; COCO has 82,783), got 100,000,000,000\n"
    )
    assert sorted(paths.data_home().rglob("*")) == before


def test_the_data_line_says_where_course_files_were_looked_for(no_cogworks):
    ds = load_dataset(demo_images=40)  # the fallback: no course files found
    assert ds.files.looked_in == paths.COGWORKS_CACHE
    assert f"(no course files in {paths.COGWORKS_CACHE})" in ds.describe()
    asked = load_dataset(demo=True)  # the demo asked for: where course files are is no matter
    assert asked.files.looked_in is None and "no course files" not in asked.describe()


def test_missing_file_names_it_the_folder_and_cogworks(folder, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / CAPTIONS_FILE).write_bytes((folder / CAPTIONS_FILE).read_bytes())
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(partial)
    message = str(info.value)
    assert FEATURES_FILE in message and str(partial) in message
    assert "cogworks-data" in message and CAPTIONS_FILE + "," not in message


def test_demo_and_folder_together_is_an_error(folder):
    with pytest.raises(ValueError, match="demo=True"):
        load_dataset(folder, demo=True)
