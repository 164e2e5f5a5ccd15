"""Tests of `capstone.runs`: a run is used on its own split, data and word vectors."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
import warnings

import numpy as np
import pytest

from capstone.common.archive import ArchiveError, save_archive
from capstone.data import minicoco
from capstone.data.paths import runs_dir
from capstone.data.split import split_images
from capstone.dataset import load_dataset
from capstone.embeddings.image import ImageEmbedder
from capstone.evaluation.metrics import evaluation_report
from capstone.runs import (
    CHECKPOINT_FILE,
    CHECKPOINT_KIND,
    MODEL_FILE,
    Interrupted,
    Run,
    RunMismatch,
    list_interrupted,
    list_runs,
    resume_command,
)
from capstone.search.database import ImageDatabase
from capstone.training.recipes import TrainConfig
from capstone.training.train import train
from capstone.training.triples import evaluation_triples

CONFIG = TrainConfig(epochs=2, batch_size=32, seed=7, val_fraction=0.25, select_images=20)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small dataset and a run trained on it with a non-default seed and split."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAPSTONE_HOME", str(home))
        folder = tmp_path_factory.mktemp("minicoco")
        minicoco.generate(folder, 400, seed=3)
        ds = load_dataset(folder)
        result = train(
            ds.data,
            ds.caption_embeddings,
            CONFIG,
            run_dir=runs_dir() / "seven",
            info=ds.info(),
            progress=False,
        )
    return home, ds, result


@pytest.fixture
def home(setup, monkeypatch):
    monkeypatch.setenv("CAPSTONE_HOME", str(setup[0]))
    return setup[0]


def test_the_split_is_saved_as_coco_ids(setup, home):
    _, ds, result = setup
    run = Run.load("seven")
    expected = ds.data.image_ids[result.val_images]
    assert run.model.info["val_image_ids"] == expected.tolist()
    np.testing.assert_array_equal(run.validation_images(ds.data), result.val_images)
    # the seed's split, not the default seed's
    _, default_split = split_images(ds.data.n_images, seed=0)
    assert not np.array_equal(run.validation_images(ds.data), default_split)


def test_a_non_default_seed_end_to_end(setup, home):
    # train, evaluate and search all use the same validation images
    _, ds, result = setup
    run = Run.load("seven")
    run.check(ds)
    report = run.evaluate(ds)
    triples = evaluation_triples(ds.data, result.val_images, 7, ds.caption_embeddings)
    expected = evaluation_report(
        result.model, ds.data, ds.caption_embeddings, result.val_images, triples, seed=7
    )
    assert report["models"] == expected["models"]
    assert report["val_images"] == len(result.val_images)
    engine = run.engine(ds)
    assert sorted(engine.database.image_ids) == sorted(ds.data.image_ids[result.val_images])
    assert len(run.engine(ds, "all").database) == ds.data.n_images


def test_the_report_names_the_run_and_its_model(setup, home):
    _, ds, result = setup
    report = Run.load("seven").evaluate(ds)
    assert (report["run"], report["model"]) == ("seven", str(home / "runs" / "seven" / "model.npz"))
    assert "warnings" not in report  # its own data
    unsaved = Run(None, result.model).evaluate(ds)
    assert (unsaved["run"], unsaved["model"]) == ("(unsaved)", None)


def test_a_run_that_records_no_seed_evaluates_with_seed_0(setup, home):
    _, ds, result = setup
    run = Run.load("seven")
    del run.model.info["train"]["seed"]  # its split is saved: only the seed is missing
    rows = result.val_images
    triples = evaluation_triples(ds.data, rows, 0, ds.caption_embeddings)
    expected = evaluation_report(
        result.model, ds.data, ds.caption_embeddings, rows, triples, seed=0
    )
    assert run.evaluate(ds)["models"] == expected["models"]


def test_evaluating_needs_the_caption_embeddings(setup, home):
    _, ds, _ = setup
    without = dataclasses.replace(ds, caption_embeddings=None)
    message = (
        "evaluating needs the caption embeddings: load the dataset with embed_captions=True"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Run.load("seven").evaluate(without)


def _stamp(path, mtime: int) -> None:
    os.utime(path, (mtime, mtime))


def _three_runs(runs, file_name: str, names: str, write) -> None:
    """Run folders ``names`` (oldest first, not in name order), each holding ``file_name``:
    ``write(path)`` for the first and last, unreadable bytes for the middle one."""
    for i, name in enumerate(names):
        path = runs / name / file_name
        path.parent.mkdir(parents=True)
        if i == 1:
            path.write_bytes(b"not what capstone writes")
        else:
            write(path)
        _stamp(path, 1000 * (i + 1))


def test_runs_are_listed_oldest_first_and_an_unreadable_one_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPSTONE_HOME", str(tmp_path))
    _three_runs(tmp_path / "runs", MODEL_FILE, "bca", ImageEmbedder(4, d_in=6, seed=0).save)
    assert [r.name for r in list_runs()] == ["b", "a"]  # by age, not by name
    assert Run.load().name == "a"  # the newest


def test_interrupted_runs_are_listed_oldest_first_and_an_unreadable_one_skipped(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("CAPSTONE_HOME", str(tmp_path))

    def checkpoint(path):
        save_archive(path, {}, {"config": {"epochs": 2}}, kind=CHECKPOINT_KIND)

    _three_runs(tmp_path / "runs", CHECKPOINT_FILE, "yzx", checkpoint)
    assert [r.name for r in list_interrupted()] == ["y", "x"]


def test_resume_command_names_the_data_and_vectors_only_when_given():
    base = "python -m capstone train --run r --resume --epochs 3"
    assert resume_command("r", 3) == base
    assert resume_command("r", 3, "/d", "g.txt") == base + " --data /d --glove g.txt"
    assert resume_command("r", 3, glove="g.txt") == base + " --glove g.txt"


def test_load_by_name_folder_file_and_newest(setup, home):
    path = home / "runs" / "seven" / "model.npz"
    for given in ("seven", home / "runs" / "seven", path, None):
        run = Run.load(given)
        assert run.path == path and run.name == "seven"
    assert [r.name for r in list_runs()] == ["seven"]


@pytest.mark.parametrize("name", ["ghost", "../nowhere"])
def test_unknown_run(home, name):
    with pytest.raises(FileNotFoundError, match=rf"no run '{name}'.*python -m capstone runs"):
        Run.load(name)


def test_no_run_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPSTONE_HOME", str(tmp_path))
    message = (
        f"no trained model in {tmp_path / 'runs'}: run `python -m capstone demo` or "
        "`python -m capstone train` first, or pass --model FILE"
    )
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
        Run.load()


def test_load_checks_the_word_vector_dimension(setup, home):
    d = Run.load("seven").model.d
    assert Run.load("seven", d=d).model.d == d
    with pytest.raises(ArchiveError, match=rf"embeds into {d} dimensions, but the word vectors"):
        Run.load("seven", d=d + 1)
    with pytest.raises(TypeError, match=r"^`d` must be an int or None, got str 'x'$"):
        Run.load("seven", d="x")


def test_other_data_is_refused_then_allowed(setup, home, tmp_path):
    other_folder = tmp_path / "other"
    minicoco.generate(other_folder, 80, seed=4)
    other = load_dataset(other_folder)
    run = Run.load("seven")
    trained_on = run.check(other, other_data=True)[0]
    run = Run.load("seven")
    message = (
        f"run seven ({run.path}) does not match: {trained_on}; word vectors: trained with x, "
        f"these are {other.glove.source}. Use the data it was trained on (--data, --glove), or "
        "pass --other-data to go on anyway (other_data=True in Python; its validation split "
        "then means nothing)"
    )
    run.model.info["glove"] = "x"
    with pytest.raises(RunMismatch, match=f"^{re.escape(message)}$"):
        run.check(other)
    run = Run.load("seven")
    differences = run.check(other, other_data=True)
    assert len(differences) == 1 and "fingerprint" in differences[0]
    # none of its validation images exists there: all images, and the run says so
    report = run.evaluate(other)
    assert report["val_images"] == other.data.n_images
    assert report["warnings"][1].startswith("none of run seven's validation images")


def test_other_data_is_named_by_its_folder_else_its_source(setup, home, tmp_path):
    other_folder = tmp_path / "other"
    minicoco.generate(other_folder, 80, seed=4)
    other = load_dataset(other_folder)
    this = f"this is {other_folder} (fingerprint {other.data.fingerprint})"
    run = Run.load("seven")
    info = run.model.info
    fingerprint = info["data_fingerprint"]
    assert run.check(other, other_data=True) == [
        f"data: trained on {info['data_folder']} (fingerprint {fingerprint}), {this}"
    ]
    for recorded, named in [({"data_source": "coco"}, "coco data"), ({}, "? data")]:
        run = Run.load("seven")
        del run.model.info["data_folder"]
        run.model.info.pop("data_source", None)
        run.model.info.update(recorded)
        assert run.check(other, other_data=True) == [
            f"data: trained on {named} (fingerprint {fingerprint}), {this}"
        ]


def test_other_word_vectors_are_refused(setup, home):
    _, ds, _ = setup
    run = Run.load("seven")
    run.model.info["glove"] = "glove.6B.200d.txt.w2v"
    with pytest.raises(RunMismatch, match=r"word vectors: trained with glove.6B.200d.txt.w2v"):
        run.check(ds)


def test_other_dimension_is_always_refused(setup, home):
    _, ds, _ = setup
    run = Run(home / "m.npz", ImageEmbedder(ds.glove.dim + 1, seed=0))
    with pytest.raises(RunMismatch, match=r"embeds into 51 dimensions, the word vectors"):
        run.check(ds, other_data=True)


def test_a_model_without_a_saved_split_rederives_it_from_its_seed(setup, home):
    _, ds, result = setup
    run = Run.load("seven")
    del run.model.info["val_image_ids"]
    np.testing.assert_array_equal(run.validation_images(ds.data), result.val_images)
    # older still: no validation fraction either, so the default 0.2 (this run used 0.25)
    del run.model.info["train"]["val_fraction"]
    _, default_fraction = split_images(ds.data.n_images, val_fraction=0.2, seed=7)
    np.testing.assert_array_equal(run.validation_images(ds.data), default_fraction)
    run.model.info.pop("train")
    message = (
        f"run seven ({run.path}) records no validation split and no seed: it cannot tell its "
        "validation images; retrain it"
    )
    with pytest.raises(RunMismatch, match=f"^{re.escape(message)}$"):
        run.validation_images(ds.data)


def test_images_are_the_validation_ones_or_all(setup, home):
    _, ds, result = setup
    run = Run.load("seven")
    np.testing.assert_array_equal(run.images(ds.data), result.val_images)
    np.testing.assert_array_equal(run.images(ds.data, "all"), np.arange(ds.data.n_images))
    with pytest.raises(
        ValueError, match=r"^`images` must be one of \('validation', 'all'\), got 'some'$"
    ):
        run.images(ds.data, "some")
    # the run's data, yet none of its validation images (ids it does not hold): refused
    run.model.info["val_image_ids"] = [-1, -2]
    message = (
        "none of run seven's validation images is in this data: search all images "
        "(--all-images) instead"
    )
    with pytest.raises(RunMismatch, match=f"^{re.escape(message)}$"):
        run.images(ds.data)


def test_the_database_is_cached_and_an_unwritable_cache_is_a_warning(setup, home, monkeypatch):
    _, ds, _ = setup
    run = Run.load("seven")
    cache = home / "runs" / "seven" / "database.npz"
    cache.unlink(missing_ok=True)
    first = run.database(ds)
    assert cache.is_file()
    # it records what it was built from: the model, the data and the images
    rows = run.validation_images(ds.data)
    info = ImageDatabase.load(cache).info
    assert info["model_sha256"] == run.weights_sha256
    assert info["data_fingerprint"] == ds.data.fingerprint
    assert info["images_sha256"] == hashlib.sha256(rows.tobytes()).hexdigest()
    # read back, not built again
    with monkeypatch.context() as m:
        m.setattr(ImageDatabase, "build", None)
        assert run.database(ds).image_ids.tolist() == first.image_ids.tolist()
    # other images: the cache is rebuilt and replaced
    assert len(run.database(ds, "all")) == ds.data.n_images
    assert len(ImageDatabase.load(cache)) == ds.data.n_images
    cache.unlink()

    def full_disk(self, path, *, overwrite=False):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ImageDatabase, "save", full_disk)
    with pytest.warns(UserWarning, match=r"could not cache the database in .*No space left"):
        db = run.database(ds)
    assert len(db) == len(first) and not cache.exists()


def test_a_corrupt_database_cache_is_rebuilt(setup, home):
    _, ds, _ = setup
    run = Run.load("seven")
    run.database(ds)
    cache = home / "runs" / "seven" / "database.npz"
    cache.write_bytes(b"not a zip")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        db = run.database(ds)
    assert any("rebuilding the database cache" in str(w.message) for w in seen)
    assert len(db) == len(run.validation_images(ds.data))


def test_a_model_outside_the_runs_folder_caches_no_database(setup, home, tmp_path):
    _, ds, _ = setup
    model = tmp_path / "mine.npz"
    model.write_bytes((home / "runs" / "seven" / "model.npz").read_bytes())
    run = Run.load(model)
    assert len(run.database(ds)) == len(run.validation_images(ds.data))
    assert list(tmp_path.iterdir()) == [model]


def test_rank_of_an_image(setup, home):
    _, ds, result = setup
    engine = Run.load("seven").engine(ds)
    image_id = int(engine.database.image_ids[3])
    rank = engine.rank_of("a dog on a beach", image_id)
    scores = engine.database.scores(engine.text_vector("a dog on a beach"))
    own = scores[engine.database.row(image_id)]
    assert rank.rank == 1 + int(np.sum(np.delete(scores, 3) > own))
    assert rank.in_database and rank.n_images == len(engine.database)
    assert rank.score == pytest.approx(float(own), abs=1e-6)
    # a training image: the rank it would have
    train_id = int(ds.data.image_ids[np.setdiff1d(result.train_images, [])[0]])
    outside = engine.rank_of("a dog on a beach", train_id)
    assert not outside.in_database
    assert outside.rank == 1 + int(np.sum(scores > outside.score))
    assert outside.n_images == len(engine.database) + 1  # the database with it added


# -- arguments, other data, interrupted runs, a runs folder that is a file ---------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda run: run.engine(None), "`dataset` must be a Dataset, got None"),
        (lambda run: run.engine("x"), "`dataset` must be a Dataset, got str 'x'"),
        (lambda run: run.evaluate({}), "`dataset` must be a Dataset, got dict {}"),
        (lambda run: run.check(3), "`dataset` must be a Dataset, got int 3"),
        (lambda run: Run.load(7), "`name_or_path` must be a str, os.PathLike or None, got int 7"),
    ],
)
def test_arguments_of_another_type_are_named(setup, home, call, message):
    with pytest.raises(TypeError) as refused:
        call(Run.load("seven"))
    assert str(refused.value) == message


@pytest.mark.parametrize("use", ["engine", "evaluate", "database"])
def test_the_api_refuses_other_data_as_the_cli_does_unless_told(setup, home, tmp_path, use):
    other_folder = tmp_path / "other"
    minicoco.generate(other_folder, 80, seed=4)
    other = load_dataset(other_folder)
    run = Run.load("seven")
    refused = r"run seven .* does not match: data: trained on .*"
    with pytest.raises(RunMismatch, match=refused + r"go on anyway \(other_data=True in Python;"):
        getattr(run, use)(other)
    assert run.warnings == []
    getattr(run, use)(other, other_data=True)
    assert run.warnings[0].startswith("data: trained on")
    getattr(run, use)(other)  # accepted once: the run remembers this data


@pytest.fixture
def interrupted(setup, home):
    """A run stopped after epoch 1 of 2: its checkpoint, no model (Ctrl-C before the end)."""
    _, ds, _ = setup
    import capstone.training.train as train_module

    real = train_module.save_checkpoint

    def save_then_ctrl_c(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_module, "save_checkpoint", save_then_ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            train(ds.data, ds.caption_embeddings, CONFIG, run_dir=runs_dir() / "stopped",
                  info=ds.info(), progress=False)  # fmt: skip
    yield runs_dir() / "stopped"
    for path in (runs_dir() / "stopped").iterdir():
        path.unlink()
    (runs_dir() / "stopped").rmdir()


def test_an_interrupted_run_says_it_has_no_model_yet_and_how_to_resume(setup, interrupted):
    _, ds, _ = setup
    checkpoint = interrupted / "checkpoint.npz"
    assert not (interrupted / "model.npz").exists()
    with pytest.raises(FileNotFoundError) as refused:
        Run.load("stopped")
    assert str(refused.value) == (
        f"run 'stopped' has no model yet: its training stopped after epoch 1 of 2 ({checkpoint} "
        "keeps it); continue it with python -m capstone train --run stopped --resume --epochs 2 "
        f"--data {ds.files.captions.parent}"
    )
    [stopped] = list_interrupted()
    assert (stopped.name, stopped.epochs_done, stopped.epochs) == ("stopped", 1, 2)
    assert [r.name for r in list_runs()] == ["seven"]  # no model: not a run to use yet


@pytest.mark.parametrize(
    ("meta", "epochs_done", "epochs"),
    [
        ({"config": {"epochs": 3}, "info": {"train": {"epochs": 5}}, "history": [{}]}, 1, 3),
        # an older checkpoint: the epochs asked for only in what the model would record
        ({"info": {"train": {"epochs": 5}}, "history": [{}, {}]}, 2, 5),
        ({}, 0, 0),
    ],
)
def test_interrupted_epochs_from_its_settings_else_its_info(tmp_path, meta, epochs_done, epochs):
    folder = tmp_path / "old"
    save_archive(folder / CHECKPOINT_FILE, {}, meta, kind=CHECKPOINT_KIND)
    run = Interrupted.of(folder)
    assert (run.name, run.checkpoint) == ("old", folder / CHECKPOINT_FILE)
    assert (run.epochs_done, run.epochs) == (epochs_done, epochs)
    assert run.info == meta.get("info", {})


def test_a_folder_with_a_model_or_without_a_checkpoint_is_not_interrupted(tmp_path):
    (tmp_path / CHECKPOINT_FILE).mkdir()  # not a file
    assert Interrupted.of(tmp_path) is None
    (tmp_path / CHECKPOINT_FILE).rmdir()
    save_archive(tmp_path / CHECKPOINT_FILE, {}, {}, kind=CHECKPOINT_KIND)
    (tmp_path / MODEL_FILE).write_bytes(b"")
    assert Interrupted.of(tmp_path) is None


def test_a_runs_folder_that_is_a_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPSTONE_HOME", str(tmp_path))
    (tmp_path / "runs").write_text("not a folder")
    message = (
        f"{tmp_path / 'runs'} is a file, but runs are kept in a folder of that name: move the "
        "file away (or set CAPSTONE_HOME to another data home)"
    )
    for call in (list_runs, list_interrupted, Run.load, lambda: Run.load("r")):
        with pytest.raises(NotADirectoryError, match=re.escape(message)):
            call()
    assert (tmp_path / "runs").read_text() == "not a folder"
