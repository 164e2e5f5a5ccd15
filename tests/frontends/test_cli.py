"""The command line, run in-process: ``capstone.frontends.cli.main([...])`` on a tiny demo.

One demo run (a few hundred images, 1 epoch) is trained once per module into its own data
home (`shared_home`); the tests that use it point CAPSTONE_HOME back there (`home`), since the
autouse fixture of conftest.py gives every test a fresh, empty data home.
"""

from __future__ import annotations

import json

import pytest
from cli_support import (
    N_IMAGES,
    RUN,
    TRAIN,
    argparse_exit,
    results_json,
    run,
    run_json,
)

from capstone import __version__
from capstone.data import paths
from capstone.dataset import load_dataset
from capstone.embeddings.image import ImageEmbedder
from capstone.frontends.cli import build_parser, main
from capstone.runs import Run
from capstone.search.terms import MAX_TERMS, MAX_WEIGHT


def val_image_ids(capsys):
    """Image ids of the run's database (its validation images), best first for one query."""
    rows = results_json(capsys, "search", "a dog on a street", "--run", RUN, "-k", "50")
    return [r["image_id"] for r in rows]


# -- help ------------------------------------------------------------------------------------

COMMANDS = {
    "demo": ["--images", "--run", "--epochs", "--batch-size", "--lr", "--seed"],
    "train": ["--data", "--glove", "--run", "--resume", "--epochs", "--hard", "--student"],
    "evaluate": ["--data", "--run", "--model", "--json", "--student"],
    "search": [
        "text",
        "-k",
        "--json",
        "--add",
        "--subtract",
        "--captions",
        "--show",
        "--image",
        "--collection",
        "--paths",
        "--weights",
        "--student",
    ],
    "similar": [
        "IMAGE_ID",
        "--space",
        "-k",
        "--json",
        "--add",
        "--subtract",
        "--all-images",
        "--photo",
        "--weights",
    ],
    "tags": ["IMAGE_ID", "-k", "--json", "--run", "--model", "--photo", "--weights"],
    "words": ["word", "-k", "--json", "--run", "--model"],
    "rank": ["text", "IMAGE_ID", "--json", "--all-images", "--other-data", "--run"],
    "runs": ["--json"],
    "info": ["--data", "--glove", "--json"],
    "serve": [
        "--data",
        "--glove",
        "--run",
        "--model",
        "--other-data",
        "--host",
        "--port",
        "--weights",
        "--student",
    ],
    "describe": ["PHOTO", "--out", "--weights", "--json"],
    "index": ["DIR", "--name", "--run", "--model", "--weights"],
    "kit": ["DIR"],
    "grade": ["DIR", "--out", "--workers", "--feedback", "--json"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_each_command(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m capstone " + command)
    for arg in COMMANDS[command]:
        assert arg in out, f"{command} --help does not mention {arg}"


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_every_command_has_help_tested():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_version(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, "--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"capstone {__version__}\n"


def test_search_help_documents_the_query_language(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert f"at most {MAX_TERMS}" in out and f"in (0, {MAX_WEIGHT:g}]" in out
    assert "'2:golden retriever + ./pool.jpg - fruit'" in out


@pytest.mark.parametrize("command", ["tags", "words"])
def test_tags_and_words_do_not_claim_to_search_images(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "--all-images" not in out and "validation images" not in out


def test_no_command_is_an_argparse_error(capsys):
    code, err = argparse_exit(capsys)
    assert code == 2
    assert "COMMAND" in err or "required" in err


def test_unknown_command_is_an_argparse_error(capsys):
    code, err = argparse_exit(capsys, "fly")
    assert code == 2
    assert "fly" in err


# -- demo ------------------------------------------------------------------------------------


def test_demo_trains_evaluates_and_shows_queries(shared_home):
    root, code, out, err = shared_home
    assert code == 0, err
    run_dir = root / "runs" / RUN
    assert (run_dir / "model.npz").is_file()
    assert (root / "minicoco" / paths.CAPTIONS_FILE).is_file()
    assert f"generating the demo dataset ({N_IMAGES:,} images)" in err
    assert f"training into {run_dir}" in err
    assert "caption -> image retrieval" in out
    for model in ("trained", "untrained", "chance"):
        assert f"\n{model} " in out
    assert 'query: "two dogs playing in the snow"' in out
    assert "ignored (IDF 0 or no GloVe vector): feline" in out
    assert f"saved {run_dir}/model.npz and metrics.json" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["models"]) == {"trained", "untrained", "chance"}
    assert 0 < metrics["val_images"] < N_IMAGES


def test_demo_into_an_existing_run_is_an_error(home, capsys):
    # the shared run's checkpoint is there: the demo refuses to overwrite it
    code, out, err = run(capsys, "demo", "--images", N_IMAGES, "--run", RUN, *TRAIN)
    assert code == 2
    assert out == ""
    assert err.count("error:") == 1
    assert f"error: run {RUN} exists already" in err
    assert f"continue that one with python -m capstone train --run {RUN} --resume" in err
    assert "data:" not in err  # refused before the data loads


def test_demo_rejects_bad_epochs(fresh_home, capsys):
    code, err = argparse_exit(capsys, "demo", "--images", 20, "--epochs", 0, "--run", "x")
    assert code == 2
    assert "argument --epochs: must be 1 or more, got 0" in err
    assert not (fresh_home / "minicoco").exists()  # refused before any data was made


# -- train -----------------------------------------------------------------------------------


def test_train_then_resume_with_more_epochs(fresh_home, demo_data, capsys):
    data = demo_data
    code, out, err = run(capsys, "train", "--data", data, "--run", "r", *TRAIN)
    assert code == 0, err
    run_dir = fresh_home / "runs" / "r"
    assert f"training into {run_dir}" in err
    assert out.startswith(f"saved {run_dir / 'model.npz'}  (best of 1 epoch: epoch 1, R@1 ")
    assert "held-out training images; val accuracy " in out
    accuracy = float(out.rsplit(" ", 1)[1].rstrip(")\n"))
    assert 0 <= accuracy <= 1
    first = (run_dir / "model.npz").read_bytes()

    code, out, err = run(
        capsys, "train", "--data", data, "--run", "r", "--resume", "--epochs", 2, "--batch-size", 64
    )
    assert code == 0, err
    assert (run_dir / "model.npz").read_bytes() != first  # one more epoch changed W


def test_train_twice_into_one_run_is_an_error(home, capsys):
    code, _, err = run(capsys, "train", "--data", home / "minicoco", "--run", RUN, *TRAIN)
    assert code == 2
    assert "error:" in err and "checkpoint.npz exists" in err and "--resume" in err


def test_train_resume_needs_a_run(fresh_home, demo_data, capsys):
    code, _, err = run(capsys, "train", "--data", demo_data, "--resume")
    assert code == 2
    assert "error: --resume needs --run NAME" in err


def test_train_resume_of_an_unknown_run_is_an_error(fresh_home, demo_data, capsys):
    code, _, err = run(capsys, "train", "--data", demo_data, "--run", "nope", "--resume", *TRAIN)
    assert code == 2
    assert "error: nothing to resume" in err and "nope" in err


def test_train_on_a_folder_without_data_is_an_error(fresh_home, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "train", "--data", empty, *TRAIN)
    assert code == 2
    assert "error:" in err and paths.CAPTIONS_FILE in err and str(empty) in err


def test_train_rejects_a_non_integer_epoch_count(capsys):
    code, err = argparse_exit(capsys, "train", "--epochs", "two")
    assert code == 2
    assert "--epochs" in err and "two" in err


# -- evaluate --------------------------------------------------------------------------------


def test_evaluate_json(home, capsys):
    report = run_json(capsys, "evaluate", "--run", RUN)
    assert report["model"] == str(home / "runs" / RUN / "model.npz")
    assert {"pool_size", "n_pools", "n_queries", "val_images", "models"} <= set(report)
    assert set(report["models"]) == {"trained", "untrained", "chance"}
    metric_keys = {
        "recall_at_1",
        "recall_at_5",
        "recall_at_10",
        "median_rank",
        "mrr",
        "triple_accuracy",
        "hard_triple_accuracy",
    }
    for figures in report["models"].values():
        assert metric_keys <= set(figures)
        assert 0 <= figures["recall_at_1"] <= figures["recall_at_5"] <= figures["recall_at_10"] <= 1
    assert report["pool_size"] == report["val_images"]  # fewer than 1,000: one pool of all
    assert report["n_pools"] == 1
    assert report["models"]["chance"]["triple_accuracy"] == 0.5
    # the demo evaluated the same model on the same data
    saved = json.loads((home / "runs" / RUN / "metrics.json").read_text())
    assert report["models"] == saved["models"]


def test_evaluate_table_and_default_model(home, capsys):
    code, out, err = run(capsys, "evaluate")  # no --run: the newest run, the only one
    assert code == 0, err
    assert out.startswith(f"run {RUN}: {home / 'runs' / RUN / 'model.npz'}\n")
    assert "caption -> image retrieval: 1 pool(s)" in out
    assert "R@1" in out and "MRR" in out
    assert "data:" in err  # verbose without --json
    assert "warning" not in err


def test_evaluate_with_model_file(home, capsys):
    path = home / "runs" / RUN / "model.npz"
    report = run_json(capsys, "evaluate", "--model", path)
    assert report["model"] == str(path)


def test_evaluate_json_prints_only_json(home, capsys):
    code, out, err = run(capsys, "evaluate", "--run", RUN, "--json")
    assert code == 0
    json.loads(out)
    assert err == ""


def test_evaluate_missing_model_file(home, capsys, tmp_path):
    missing = tmp_path / "absent.npz"
    code, out, err = run(capsys, "evaluate", "--model", missing)
    assert code == 2
    assert out == ""
    assert "error:" in err and str(missing) in err


def test_evaluate_unknown_run(home, capsys):
    code, out, err = run(capsys, "evaluate", "--run", "no-such-run")
    assert code == 2
    assert out == ""
    assert "error:" in err and "no-such-run" in err


def test_evaluate_without_any_run(fresh_home, demo_data, capsys):
    code, _, err = run(capsys, "evaluate", "--data", demo_data)
    assert code == 2
    assert "error: no trained model in" in err and "python -m capstone demo" in err


@pytest.mark.parametrize("newest", ["first", "second"])
def test_the_default_model_is_the_newest_run(fresh_home, demo_data, shared_home, capsys, newest):
    import os
    import shutil

    for i, name in enumerate(["first", "second"]):
        model = fresh_home / "runs" / name / "model.npz"
        model.parent.mkdir(parents=True)
        shutil.copy(shared_home[0] / "runs" / RUN / "model.npz", model)
        age = 0 if name == newest else 100 + i
        os.utime(model, (model.stat().st_mtime - age,) * 2)
    report = run_json(capsys, "evaluate", "--data", demo_data)
    assert report["model"] == str(fresh_home / "runs" / newest / "model.npz")


def test_evaluate_run_and_model_are_exclusive(capsys):
    code, err = argparse_exit(capsys, "evaluate", "--run", "a", "--model", "b.npz")
    assert code == 2
    assert "not allowed with" in err


def test_evaluate_refuses_a_run_of_other_data_unless_told(home, capsys, tmp_path):
    from capstone.data import minicoco

    other = tmp_path / "other"
    minicoco.generate(other, 60, seed=1)
    model = home / "runs" / RUN / "model.npz"
    before = model.read_bytes()
    code, out, err = run(capsys, "evaluate", "--data", other, "--model", model)
    assert code == 2 and out == ""
    trained_on = f"data: trained on {home / 'minicoco'} (fingerprint "
    assert f"error: run {RUN} ({model}) does not match: {trained_on}" in err
    assert f"this is {other} (fingerprint " in err
    assert "pass --other-data to go on anyway" in err
    code, out, err = run(capsys, "evaluate", "--data", other, "--model", model, "--other-data")
    assert code == 0, err
    assert f"warning: --other-data: {trained_on}" in err
    assert "warning: --other-data: none of run tiny's validation images" in err
    assert "validation split means nothing on this data" in err
    assert "caption -> image retrieval" in out
    report = run_json(capsys, "evaluate", "--data", other, "--model", model, "--other-data")
    assert report["warnings"][0].startswith(trained_on)
    assert model.read_bytes() == before


# -- search ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def id_sets(shared_home):
    """(validation image ids, all image ids) of the shared run, as the CLI should split them."""
    from capstone.data.coco import CocoData
    from capstone.data.split import split_images

    root, code, _, err = shared_home
    assert code == 0, err
    data = CocoData.load(
        root / "minicoco" / paths.CAPTIONS_FILE, root / "minicoco" / paths.FEATURES_FILE
    )
    _, val = split_images(data.n_images, val_fraction=0.2, seed=0)
    return set(data.image_ids[val].tolist()), set(data.image_ids.tolist())


def check_ranked(rows, k):
    """JSON result rows: k of them, ranks 1..k, the SearchResult fields, best first."""
    assert len(rows) == k
    assert [r["rank"] for r in rows] == list(range(1, k + 1))
    for r in rows:
        assert set(r) == {"rank", "image_id", "score", "url", "captions"}
        assert str(r["image_id"]).rjust(12, "0") in r["url"]
        assert r["captions"] and all(isinstance(c, str) for c in r["captions"])
        assert -1 <= r["score"] <= 1
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert len({r["image_id"] for r in rows}) == k


def test_search_json(home, capsys, id_sets):
    val, _ = id_sets
    rows = results_json(capsys, "search", "two dogs playing in the snow", "--run", RUN, "-k", 5)
    check_ranked(rows, 5)
    assert {r["image_id"] for r in rows} <= val  # the database is the validation images
    assert (home / "runs" / RUN / "database.npz").is_file()  # cached beside the model


def test_search_default_k_and_every_validation_image(home, capsys, id_sets):
    val, everything = id_sets
    check_ranked(results_json(capsys, "search", "a dog", "--run", RUN), 9)
    rows = results_json(capsys, "search", "a dog", "--run", RUN, "-k", 1000)
    assert {r["image_id"] for r in rows} == val  # k beyond the database: all of it
    rows = results_json(capsys, "search", "a dog", "--run", RUN, "-k", 1000, "--all-images")
    assert {r["image_id"] for r in rows} == everything
    # the cached database follows the images asked for
    rows = results_json(capsys, "search", "a dog", "--run", RUN, "-k", 1000)
    assert {r["image_id"] for r in rows} == val


def test_search_speaks_the_query_language(home, capsys):
    """The web's syntax: weights and + / - terms, not one text with "2dog" ignored."""
    engine = Run.load(RUN).engine(load_dataset(home / "minicoco"))
    terms = [(2.0, "dog"), (1.0, "beach"), (-1.0, "sand")]
    expected = [r.image_id for r in engine.search_vector(engine.terms_vector(terms), 6)]
    report = run_json(capsys, "search", "2:dog + beach - sand", "--run", RUN, "-k", 6)
    assert [r["image_id"] for r in report["results"]] == expected
    assert "2dog" not in report["ignored_words"]
    # --add and --subtract are terms of the same sum
    rows = results_json(capsys, "search", "2:dog", "--add", "beach", "--subtract", "sand",
                        "--run", RUN, "-k", 6)  # fmt: skip
    assert [r["image_id"] for r in rows] == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("11:dog", "the weight of '11:dog' must lie in (0, 10]"),
        (" + ".join(["dog"] * (MAX_TERMS + 1)), f"a query has at most {MAX_TERMS} terms"),
    ],
)
def test_search_refuses_a_bad_query_before_loading_data(fresh_home, capsys, query, message):
    code, out, err = run(capsys, "search", query)
    assert code == 2 and out == ""
    assert f"error: {message}" in err and "data:" not in err


def test_tags_and_words_say_nothing_of_searched_images(home, capsys):
    image = val_image_ids(capsys)[0]
    for argv in (["tags", image], ["words", "dog"]):
        code, _, err = run(capsys, *argv, "--run", RUN)
        assert code == 0, err
        assert "searching" not in err and "validation images" not in err


def test_search_table(home, capsys):
    code, out, err = run(capsys, "search", "a red bus on a city street", "-k", 3, "--captions", 2)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 * 3  # each result, then its 2 captions
    for rank, i in enumerate(range(0, 9, 3), 1):
        assert lines[i].startswith(f"#{rank} ")
        assert "image " in lines[i] and "http" in lines[i]
        assert lines[i + 1].startswith("       ") and lines[i + 2].startswith("       ")
    assert "data:" in err


def test_search_table_matches_json(home, capsys):
    rows = results_json(capsys, "search", "a pizza", "--run", RUN, "-k", 4)
    code, out, _ = run(capsys, "search", "a pizza", "--run", RUN, "-k", 4, "--captions", 0)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    for line, row in zip(lines, rows, strict=True):
        assert f"{row['score']:6.3f}  image {row['image_id']}  {row['url']}" in line


def _query_scores(home, add, subtract=(), image_id=None):
    """Expected scores of a combined query over the run's validation images."""
    import numpy as np

    from capstone.data.split import split_images
    from capstone.dataset import load_dataset
    from capstone.embeddings.image import ImageEmbedder

    ds = load_dataset(home / "minicoco")
    model = ImageEmbedder.load(home / "runs" / RUN / "model.npz")
    _, val = split_images(ds.data.n_images, val_fraction=0.2, seed=0)

    # each text as the model sees it: IDF-weighted GloVe, then the run's learned text map
    def text(t):
        return model.embed_text(ds.text.embed_query(t))

    q = sum(map(text, add), np.zeros(model.d, np.float32)) - sum(
        map(text, subtract), np.zeros(model.d, np.float32)
    )
    if image_id is not None:
        q = q + model.embed(ds.data.descriptor(image_id)[None])[0]
    q = q / np.linalg.norm(q)
    scores = model.embed(ds.data.descriptors[val]) @ q
    return dict(zip(ds.data.image_ids[val].tolist(), scores.tolist(), strict=True))


def test_search_add_and_subtract(home, capsys):
    rows = results_json(
        capsys,
        "search",
        "a dog",
        "--add",
        "snow",
        "--add",
        "a park",
        "--subtract",
        "a car",
        "--run",
        RUN,
        "-k",
        5,
    )
    check_ranked(rows, 5)
    expected = _query_scores(home, ["a dog", "snow", "a park"], ["a car"])
    best = sorted(expected, key=expected.get, reverse=True)[:5]
    assert [r["image_id"] for r in rows] == best
    for r in rows:
        assert r["score"] == pytest.approx(expected[r["image_id"]], abs=1e-5)
    plain = results_json(capsys, "search", "a dog", "--run", RUN, "-k", 5)
    assert [r["score"] for r in plain] != [r["score"] for r in rows]


def test_search_subtract_alone_changes_the_query(home, capsys):
    rows = results_json(capsys, "search", "a dog", "--subtract", "snow", "--run", RUN, "-k", 3)
    expected = _query_scores(home, ["a dog"], ["snow"])
    for r in rows:
        assert r["score"] == pytest.approx(expected[r["image_id"]], abs=1e-5)


@pytest.mark.parametrize("argv", [["a dog", "--subtract", "a dog"], ["a dog - a dog"]])
def test_search_subtracting_the_query_itself_is_an_error(home, capsys, argv):
    # the web app says the same words (capstone.search.engine.query_vector)
    code, out, err = run(capsys, "search", *argv, "--run", RUN)
    assert code == 2
    assert out == ""
    assert "error: the terms of 'a dog - a dog' cancel out: nothing is left to search" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "error: the query is empty"), ("  ", "error: the query is empty"), ("?!", "no words")],
)
def test_search_empty_query(home, capsys, text, message):
    code, out, err = run(capsys, "search", text, "--run", RUN)
    assert code == 2
    assert out == ""
    assert message in err


def test_search_query_of_unknown_words(home, capsys):
    code, out, err = run(capsys, "search", "qzxv wvkj", "--run", RUN)
    assert code == 2
    assert out == ""
    assert "error:" in err and "qzxv wvkj" in err


@pytest.mark.parametrize("k", [0, -3])
def test_search_k_must_be_positive(home, capsys, k):
    code, err = argparse_exit(capsys, "search", "a dog", "--run", RUN, "-k", k)
    assert code == 2
    assert f"argument -k: must be 1 or more, got {k}" in err


def test_search_k_must_be_an_integer(capsys):
    code, err = argparse_exit(capsys, "search", "a dog", "-k", "many")
    assert code == 2
    assert "-k" in err and "many" in err


def test_search_unknown_run(home, capsys):
    code, out, err = run(capsys, "search", "a dog", "--run", "missing-run")
    assert code == 2
    assert out == ""
    assert "error:" in err and "missing-run" in err


def test_search_missing_model_file(home, capsys, tmp_path):
    code, out, err = run(capsys, "search", "a dog", "--model", tmp_path / "gone.npz")
    assert code == 2
    assert out == ""
    assert "error:" in err and "gone.npz" in err


def test_search_with_a_model_outside_runs_caches_nothing(home, capsys, tmp_path):
    import shutil

    model = tmp_path / "mine" / "model.npz"
    model.parent.mkdir()
    shutil.copy(home / "runs" / RUN / "model.npz", model)
    rows = results_json(capsys, "search", "a dog", "--model", model, "-k", 3)
    by_run = results_json(capsys, "search", "a dog", "--run", RUN, "-k", 3)
    assert rows == by_run
    assert sorted(p.name for p in model.parent.iterdir()) == ["model.npz"]


# -- similar ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def some_ids(id_sets):
    """(an image id in the run's database, an image id only in its training images)."""
    val, everything = id_sets
    return min(val), min(everything - val)


def test_similar_json(home, capsys, id_sets, some_ids):
    val, _ = id_sets
    image, _ = some_ids
    rows = results_json(capsys, "similar", image, "--run", RUN, "-k", 4)
    check_ranked(rows, 4)
    ids = {r["image_id"] for r in rows}
    assert image not in ids  # the query image itself is left out
    assert ids <= val
    everything = results_json(capsys, "similar", image, "--run", RUN, "-k", 1000)
    assert {r["image_id"] for r in everything} == val - {image}


def test_similar_to_a_training_image(home, capsys, id_sets, some_ids):
    val, _ = id_sets
    _, train_image = some_ids
    rows = results_json(capsys, "similar", train_image, "--run", RUN, "-k", 3)
    check_ranked(rows, 3)
    assert {r["image_id"] for r in rows} <= val


def test_similar_in_descriptor_space(home, capsys, id_sets, some_ids):
    _, everything = id_sets
    image, _ = some_ids
    rows = results_json(capsys, "similar", image, "--space", "descriptor", "--run", RUN, "-k", 1000)
    assert {r["image_id"] for r in rows} == everything - {image}  # every image of the dataset
    semantic = results_json(capsys, "similar", image, "--run", RUN, "-k", 5)
    assert [r["image_id"] for r in rows[:5]] != [r["image_id"] for r in semantic] or [
        r["score"] for r in rows[:5]
    ] != [r["score"] for r in semantic]


def test_similar_table(home, capsys, some_ids):
    image, _ = some_ids
    code, out, err = run(capsys, "similar", image, "-k", 2)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("#1 ") and lines[2].startswith("#2 ")
    assert f"image {image} " not in out


def test_similar_with_add(home, capsys, some_ids):
    image, _ = some_ids
    rows = results_json(capsys, "similar", image, "--add", "snow", "--run", RUN, "-k", 5)
    check_ranked(rows, 5)
    assert image not in {r["image_id"] for r in rows}
    expected = _query_scores(home, ["snow"], image_id=image)
    del expected[image]
    assert [r["image_id"] for r in rows] == sorted(expected, key=expected.get, reverse=True)[:5]
    for r in rows:
        assert r["score"] == pytest.approx(expected[r["image_id"]], abs=1e-5)
    subtracted = results_json(capsys, "similar", image, "--subtract", "snow", "--run", RUN, "-k", 5)
    expected = _query_scores(home, [], ["snow"], image_id=image)
    for r in subtracted:
        assert r["score"] == pytest.approx(expected[r["image_id"]], abs=1e-5)


def test_similar_add_in_descriptor_space_is_an_error(home, capsys, some_ids):
    image, _ = some_ids
    code, out, err = run(
        capsys, "similar", image, "--space", "descriptor", "--add", "snow", "--run", RUN
    )
    assert code == 2
    assert out == ""
    assert "error: --add/--subtract work in the semantic space only" in err


@pytest.mark.parametrize("command", [["similar"], ["similar", "--space", "descriptor"], ["tags"]])
def test_unknown_image(home, capsys, command):
    code, out, err = run(capsys, *command, 1, "--run", RUN)
    assert code == 2
    assert out == ""
    assert "error:" in err and "unknown image id 1" in err


@pytest.mark.parametrize("command", ["similar", "tags"])
def test_image_queries_k_zero(home, capsys, some_ids, command):
    image, _ = some_ids
    code, err = argparse_exit(capsys, command, image, "--run", RUN, "-k", 0)
    assert code == 2
    assert "argument -k: must be 1 or more, got 0" in err


def test_similar_bad_arguments(capsys):
    code, err = argparse_exit(capsys, "similar", "12", "--space", "pixels")
    assert code == 2
    assert "pixels" in err and "--space" in err
    code, err = argparse_exit(capsys, "similar", "a-cat")
    assert code == 2
    assert "IMAGE_ID" in err and "a-cat" in err


# -- tags ------------------------------------------------------------------------------------


def test_tags_json(home, capsys, some_ids):
    image, train_image = some_ids
    for i in (image, train_image):
        tags = run_json(capsys, "tags", i, "--run", RUN, "-k", 4)
        assert len(tags) == 4
        assert all(set(t) == {"word", "score"} for t in tags)
        words = [t["word"] for t in tags]
        assert len(set(words)) == 4 and all(w.isalpha() for w in words)
        scores = [t["score"] for t in tags]
        assert scores == sorted(scores, reverse=True)
    assert len(run_json(capsys, "tags", image, "--run", RUN)) == 5  # default k


def test_tags_table(home, capsys, some_ids):
    image, _ = some_ids
    tags = run_json(capsys, "tags", image, "--run", RUN, "-k", 3)
    code, out, err = run(capsys, "tags", image, "--run", RUN, "-k", 3)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"image {image}: http")
    assert str(image).rjust(12, "0") in lines[0]
    assert sum(line.startswith("  caption: ") for line in lines) >= 5
    assert lines[-1] == "tags: " + ", ".join(f"{t['word']} ({t['score']:.2f})" for t in tags)


def test_tags_has_no_add_option(capsys):
    code, err = argparse_exit(capsys, "tags", "12", "--add", "snow")
    assert code == 2
    assert "--add" in err


# -- words -----------------------------------------------------------------------------------


def test_words_json(home, capsys):
    words = run_json(capsys, "words", "dog", "--run", RUN, "-k", 3)
    assert len(words) == 3
    assert all(set(w) == {"word", "score"} for w in words)
    assert "dog" not in {w["word"] for w in words}  # the word itself is left out
    scores = [w["score"] for w in words]
    assert scores == sorted(scores, reverse=True)
    assert all(-1 <= s <= 1 for s in scores)
    assert len(run_json(capsys, "words", "dog", "--run", RUN)) == 10  # default k
    assert run_json(capsys, "words", " DOG ", "--run", RUN, "-k", 3) == words


def test_words_table(home, capsys):
    words = run_json(capsys, "words", "dog", "--run", RUN, "-k", 2)
    code, out, err = run(capsys, "words", "dog", "--run", RUN, "-k", 2)
    assert code == 0, err
    listed = ", ".join(f"{w['word']} ({w['score']:.2f})" for w in words)
    assert out.startswith("dog (IDF ")
    assert out.rstrip("\n").endswith("): " + listed)
    assert float(out.split("(IDF ")[1].split(")")[0]) > 0


def test_words_of_a_word_in_no_caption(home, capsys):
    # "feline" is in GloVe but in no demo caption (see capstone.frontends.cli.training.DEMO_QUERIES)
    code, out, err = run(capsys, "words", "feline", "--run", RUN, "-k", 3)
    assert code == 0, err
    assert out.startswith("feline (IDF 0.00): ")


def test_words_unknown_word(home, capsys):
    code, out, err = run(capsys, "words", "qzxvwk", "--run", RUN)
    assert code == 2
    assert out == ""
    assert "error:" in err and "qzxvwk" in err and "no GloVe vector" in err


@pytest.mark.parametrize("word", ["", "   "])
def test_words_empty_word(home, capsys, word):
    code, out, err = run(capsys, "words", word, "--run", RUN)
    assert code == 2
    assert out == ""
    assert "error: `word` must be a non-empty string" in err


def test_words_k_zero(home, capsys):
    code, err = argparse_exit(capsys, "words", "dog", "--run", RUN, "-k", 0)
    assert code == 2
    assert "argument -k: must be 1 or more, got 0" in err


def test_words_unknown_run(home, capsys):
    code, out, err = run(capsys, "words", "dog", "--run", "ghost")
    assert code == 2
    assert out == ""
    assert "error:" in err and "ghost" in err


def test_search_commands_without_any_run(fresh_home, demo_data, capsys):
    for argv in (["search", "a dog"], ["similar", "1"], ["tags", "1"], ["words", "dog"]):
        code, out, err = run(capsys, *argv, "--data", demo_data)
        assert code == 2, argv
        assert out == ""
        assert f"error: no trained model in {fresh_home / 'runs'}" in err


def test_search_show_saves_a_grid_of_caption_tiles(home, capsys, tmp_path):
    # Demo images have no photo: the grid is drawn from captions, with no download.
    png = tmp_path / "grid.png"
    code, _, err = run(capsys, "search", "a dog", "-k", "3", "--show", png)
    assert code == 0 and png.read_bytes().startswith(b"\x89PNG")
    assert f"grid saved to {png}" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--hard", "0.5"], "--hard is for the course recipe"),
        (["--recipe", "course", "--both-directions"], "--both-directions is for the in-batch"),
        (["--recipe", "course", "--warmup", "1"], "--warmup is for vse++"),
        (["--batch-size", "1"], "--batch-size must be 2 or more for vse++"),
        (["--momentum", "0.5"], "--momentum is for SGD only"),
        (["--patience", "2", "--select-images", "0"], "--patience needs --select-images > 0"),
        (["--lr", "-1"], "--lr must lie in (0, inf), got -1.0"),
        (["--margin", "nan"], "--margin must lie in [0, inf), got nan"),
    ],
)
def test_train_refuses_recipe_settings_before_loading_data(fresh_home, capsys, flags, message):
    # no data folder exists: the settings are checked first, so the error is about them
    code, out, err = run(capsys, "train", "--data", fresh_home / "nowhere", *flags)
    assert code == 2 and out == ""
    assert message in err and "nowhere" not in err


def test_train_with_the_course_recipe_says_so(fresh_home, demo_data, capsys):
    code, out, err = run(capsys, "train", "--data", demo_data, "--recipe", "course", *TRAIN)
    assert code == 0, err
    assert "(last epoch 1, val accuracy " in out
    model = ImageEmbedder.load(next((fresh_home / "runs").glob("*/model.npz")))
    assert model.info["train"]["recipe"] == "course" and model.text_map is None


# -- rank, runs, info, --version, ignored words ------------------------------------------------


def test_search_says_which_words_it_ignored(home, capsys):
    code, out, err = run(capsys, "search", "a feline on a sofa", "--run", RUN, "-k", 2)
    assert code == 0, err
    assert out.splitlines()[0] == "ignored (IDF 0 or no GloVe vector): feline"
    assert "searching the validation images of run tiny" in err and "--all-images" in err
    report = run_json(capsys, "search", "a feline on a sofa", "--run", RUN, "-k", 2)
    assert report["ignored_words"] == ["feline"] and len(report["results"]) == 2
    assert report["images"] == "validation"


def test_rank_of_an_image_in_the_database(home, capsys, id_sets):
    rows = results_json(capsys, "search", "a dog", "--run", RUN, "-k", 3)
    for i, row in enumerate(rows, 1):
        report = run_json(capsys, "rank", "a dog", row["image_id"], "--run", RUN)
        assert report["rank"] == i and report["in_database"]
        assert report["score"] == pytest.approx(row["score"], abs=1e-5)
    code, out, err = run(capsys, "rank", "a dog", rows[0]["image_id"], "--run", RUN)
    assert code == 0, err
    assert out.startswith(f"image {rows[0]['image_id']} ranks 1 of {len(id_sets[0])} for ")


def test_rank_of_a_training_image_and_of_an_unknown_id(home, capsys, id_sets):
    val, everything = id_sets
    train_id = min(everything - val)
    code, out, _ = run(capsys, "rank", "a dog", train_id, "--run", RUN)
    assert code == 0 and "(it is not one of them: the rank it would have)" in out
    code, out, err = run(capsys, "rank", "a dog", 99999999999, "--run", RUN)
    assert code == 2 and out == "" and "99999999999" in err


def test_runs_lists_the_runs(home, capsys):
    code, out, err = run(capsys, "runs")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["name", "date", "data", "recipe", "epochs", "best", "R@1"]
    assert lines[1].split()[0] == RUN and "demo" in lines[1] and "vse++" in lines[1]
    rows = run_json(capsys, "runs")
    assert [r["name"] for r in rows] == [RUN] and rows[0]["epochs"] == 1
    assert (
        rows[0]["val_r1"]
        == json.loads((home / "runs" / RUN / "metrics.json").read_text())["models"]["trained"][
            "recall_at_1"
        ]
    )


def test_runs_without_any(fresh_home, capsys):
    code, out, _ = run(capsys, "runs")
    assert code == 0 and out.startswith("no runs in ")


def test_info_describes_the_data(fresh_home, demo_data, capsys):
    code, out, err = run(capsys, "info", "--data", demo_data)
    assert code == 0, err
    assert "299 images" in out and "descriptors: 512 wide" in out
    facts = run_json(capsys, "info", "--data", demo_data)
    assert facts["images"] == 299 and facts["descriptor_width"] == 512
    assert len(facts["examples"]) == 5
    for example in facts["examples"]:
        assert f"  {example['image_id']}: " in out


def test_version(capsys):
    from capstone import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"capstone {__version__}"


def test_evaluate_writes_metrics_json_in_the_run_folder(home, capsys):
    metrics = home / "runs" / RUN / "metrics.json"
    metrics.unlink()
    report = run_json(capsys, "evaluate", "--run", RUN)
    saved = json.loads(metrics.read_text())
    assert saved.pop("model_sha256") == Run.load(RUN).weights_sha256  # which weights it scored
    assert saved == report


def test_search_says_which_path_answers_and_exact_forces_the_scan(home, capsys, monkeypatch):
    """Below the threshold the exact scan answers; above it the index (built once, saved beside
    the run's database) answers with exact scores, unless --exact."""
    from capstone.search import ann

    exact = run_json(capsys, "search", "a dog", "--run", RUN, "-k", 5)
    assert exact["answered_by"].startswith("exact scan of")
    monkeypatch.setattr(ann, "THRESHOLD", 10)
    indexed = run_json(capsys, "search", "a dog", "--run", RUN, "-k", 5)
    assert indexed["answered_by"].startswith("approximate index PQ")
    assert ann.index_files(home / "runs" / RUN / "database.npz")[0].is_file()
    scores = {r["image_id"]: r["score"] for r in exact["results"]}
    for row in indexed["results"]:  # scores are exact whatever path found the image
        if row["image_id"] in scores:
            assert row["score"] == pytest.approx(scores[row["image_id"]], abs=1e-6)
    forced = run_json(capsys, "search", "a dog", "--run", RUN, "-k", 5, "--exact")
    assert forced["answered_by"].startswith("exact scan of")
    assert [r["image_id"] for r in forced["results"]] == [r["image_id"] for r in exact["results"]]
    # (the same cosines up to float32 rounding: above the threshold the rows are kept row-major)
    for a, b in zip(forced["results"], exact["results"], strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-6)
    code, _, err = run(capsys, "search", "a dog", "--run", RUN, "-k", 5)
    assert code == 0 and "answered by the approximate index PQ" in err
