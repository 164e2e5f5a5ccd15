"""Tests for `capstone.cli`: every command run in-process on a tiny demo, and its bad inputs."""

import json

import pytest

from capstone.cli import build_parser, main
from capstone.model import ImageEmbedder

COMMANDS = ["demo", "train", "evaluate", "search", "similar", "tags", "words"]


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    """A data home where `demo` generated 300 images and trained the run "tiny"."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAPSTONE_HOME", str(home))
        mp.delenv("CAPSTONE_DATA", raising=False)
        assert main(["demo", "--images", "300", "--epochs", "2", "--run", "tiny"]) == 0
    return home


@pytest.fixture
def home(demo_home, monkeypatch, capsys):
    monkeypatch.setenv("CAPSTONE_HOME", str(demo_home))  # after conftest's fresh home
    capsys.readouterr()  # drop the demo's output if it ran for this test
    return demo_home


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def search_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


METRICS = {"recall_at_1", "recall_at_5", "recall_at_10", "median_rank", "mrr"}


def test_demo_saved_its_run_and_metrics(home):
    run_dir = home / "runs" / "tiny"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["models"]) == {"trained", "untrained", "chance"}
    assert METRICS <= set(metrics["models"]["trained"])
    model = ImageEmbedder.load(run_dir / "model.npz", d=50)
    assert model.info["train"]["epochs"] == 2 and model.info["data_source"] == "demo"
    assert (home / "minicoco" / "captions_train2014.json").is_file()


def test_evaluate_json_matches_the_demo_metrics(home, capsys):
    report = search_json(capsys, "evaluate", "--run", "tiny")
    saved = json.loads((home / "runs" / "tiny" / "metrics.json").read_text())
    assert report["models"] == saved["models"]
    assert report["model"].endswith("tiny/model.npz")


def test_evaluate_prints_a_table(home, capsys):
    code, out, _ = run(capsys, "evaluate")  # the newest run by default
    assert code == 0
    assert "R@1" in out and "chance" in out and "untrained" in out


def test_search_json_is_ranked_results(home, capsys):
    rows = search_json(capsys, "search", "two dogs playing in the snow", "-k", "4")
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert set(rows[0]) == {"rank", "image_id", "score", "url", "captions"}
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_search_text_output(home, capsys):
    code, out, _ = run(capsys, "search", "a pizza on a table", "-k", "2", "--captions", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("#1") and "image" in lines[0] and "http" in lines[0]
    assert len(lines) == 2 * 3  # a header and two captions per result


def test_search_add_and_subtract_change_the_query(home, capsys):
    plain = search_json(capsys, "search", "a dog", "-k", "5")
    combined = search_json(
        capsys, "search", "a dog", "--add", "a beach", "--subtract", "snow", "-k", "5"
    )
    assert [r["score"] for r in plain] != [r["score"] for r in combined]


def test_search_all_images_searches_more(home, capsys):
    val = search_json(capsys, "search", "a dog", "-k", "1000")
    every = search_json(capsys, "search", "a dog", "-k", "1000", "--all-images")
    assert len(val) < len(every) == 299


def test_search_show_saves_a_grid(home, capsys, tmp_path):
    png = tmp_path / "grid.png"
    code, _, err = run(capsys, "search", "a dog", "-k", "3", "--show", str(png))
    assert code == 0 and png.read_bytes().startswith(b"\x89PNG")
    assert "grid saved" in err


def test_similar_leaves_the_image_out(home, capsys):
    image_id = search_json(capsys, "search", "a dog", "-k", "1")[0]["image_id"]
    for space in ("semantic", "descriptor"):
        rows = search_json(capsys, "similar", str(image_id), "-k", "3", "--space", space)
        assert len(rows) == 3 and image_id not in [r["image_id"] for r in rows]


def test_tags_and_words(home, capsys):
    image_id = search_json(capsys, "search", "a dog", "-k", "1")[0]["image_id"]
    tags = search_json(capsys, "tags", str(image_id), "-k", "4")
    assert len(tags) == 4 and all(t["word"].isalpha() for t in tags)
    code, out, _ = run(capsys, "tags", str(image_id))
    assert code == 0 and "caption:" in out and "tags:" in out
    words = search_json(capsys, "words", "feline", "-k", "3")
    assert len(words) == 3 and "feline" not in [w["word"] for w in words]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "a dog", "-k", "0"], "`k`"),
        (["search", ""], "no words"),
        (["search", "qwzxv"], "qwzxv"),
        (["similar", "999999999"], "error: unknown image id 999999999"),  # no KeyError quotes
        (["tags", "999999999"], "error: unknown image id 999999999"),
        (["words", "qwzxvblorp"], "qwzxvblorp"),
        (["search", "a dog", "--run", "nosuchrun"], "no such model file (--run nosuchrun)"),
        (["evaluate", "--model", "missing.npz"], "missing.npz"),
        (["similar", "1", "--space", "descriptor", "--add", "snow"], "semantic space only"),
        (["train", "--resume"], "--resume needs --run"),
        (["train", "--data", "nowhere"], "nowhere"),
    ],
)
def test_bad_inputs_exit_2_with_a_message(home, capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


def test_a_trained_run_is_not_overwritten(home, capsys):
    model = home / "runs" / "tiny" / "model.npz"
    before = model.read_bytes()
    code, _, err = run(capsys, "train", "--run", "tiny", "--epochs", "1")
    assert code == 2 and "tiny" in err
    assert model.read_bytes() == before


def test_train_then_resume(home, capsys):
    assert run(capsys, "train", "--run", "more", "--epochs", "1")[0] == 0
    code, out, _ = run(capsys, "train", "--run", "more", "--epochs", "2", "--resume")
    assert code == 0 and "more/model.npz" in out
    model = ImageEmbedder.load(home / "runs" / "more" / "model.npz")
    assert [h["epoch"] for h in model.info["history"]] == [1, 2]


@pytest.mark.parametrize("argv", [["search"], ["similar", "abc"], ["search", "x", "-k", "two"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_no_model_yet_says_how_to_get_one(capsys):
    code, _, err = run(capsys, "evaluate")  # conftest's fresh, empty home
    assert code == 2 and "python -m capstone demo" in err


def test_parser_knows_every_command():
    assert set(build_parser()._subparsers._group_actions[0].choices) == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m capstone {command}")
    assert "--json" in out or command in ("demo", "train")


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(c in out for c in COMMANDS)
