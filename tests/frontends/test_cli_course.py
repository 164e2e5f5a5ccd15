"""The course commands (`capstone.frontends.cli.course`: kit, grade) and ``--student`` on train,
evaluate and search (`capstone.frontends.cli.args.load_run`, `capstone.frontends.cli.training`)."""

import json
import sys
from pathlib import Path

import pytest
from cli_support import argparse_exit, run, run_json

from capstone.data import minicoco

sys.path.insert(0, str(Path(__file__).parents[1] / "course"))
from submissions import SOLVED, submission


@pytest.fixture
def data(tmp_path):
    minicoco.generate(tmp_path / "data", 300)
    return tmp_path / "data"


def test_students_train_evaluate_and_search_with_their_own_functions(
    capsys, fresh_home, data, tmp_path
):
    code, out, err = run(capsys, "train", "--student", SOLVED, "--data", data, "--epochs", "2",
                         "--run", "mine")  # fmt: skip
    assert code == 0, err
    assert "saved" in out and "trained by" in out and "epoch 2: loss" in err
    report = run_json(capsys, "evaluate", "--student", SOLVED, "--run", "mine", "--data", data)
    assert report["student"] == str(SOLVED / "my_capstone.py")
    models = report["models"]
    assert models["trained"]["recall_at_10"] > models["untrained"]["recall_at_10"]
    assert not (fresh_home / "runs" / "mine" / "metrics.json").exists()  # capstone's, not theirs

    answer = run_json(capsys, "search", "a dog on a beach", "--student", SOLVED, "--run", "mine",
                      "--data", data, "-k", "5")  # fmt: skip
    assert answer["answered_by"].startswith("your top_k over the scores of all ")
    found = answer["results"]
    scores = [r["score"] for r in found]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    # their top_k answers the query: a top-k that sorts ascending shows the worst first
    upside_down = submission(tmp_path / "topk", "top-k ascending")
    found = run_json(capsys, "search", "a dog on a beach", "--student", upside_down, "--run",
                     "mine", "--data", data, "-k", "5")["results"]  # fmt: skip
    assert [r["score"] for r in found] == sorted(r["score"] for r in found) < scores


def test_train_refuses_flags_the_student_recipe_does_not_use(capsys, fresh_home):
    code, _, err = run(capsys, "train", "--student", SOLVED, "--recipe", "vse++")
    assert code == 2 and "--recipe: training with --student runs the course recipe" in err
    code, _, err = run(capsys, "train", "--student", SOLVED, "--run", "mine", "--resume")
    assert code == 2 and "--resume: training with --student keeps no checkpoint" in err
    assert not (fresh_home / "runs").exists()  # refused before any folder is made


def test_a_folder_without_the_module_is_refused_before_anything_runs(capsys, tmp_path):
    code, err = argparse_exit(capsys, "grade", tmp_path)
    assert code == 2 and "no my_capstone.py in it" in err
    code, err = argparse_exit(capsys, "search", "a dog", "--student", tmp_path / "nowhere")
    assert code == 2 and "no such folder" in err
    code, err = argparse_exit(capsys, "grade", SOLVED, "--workers", "0")
    assert code == 2 and "argument --workers: must be 1 or more, got 0" in err


def test_grade_prints_the_untouched_kit_as_json_and_writes_the_gradebook(capsys, tmp_path):
    run(capsys, "kit", tmp_path / "kit")
    code, out, err = run(capsys, "grade", tmp_path / "kit", "--json", "--out", tmp_path / "marks")
    assert code == 0, err
    (result,) = json.loads(out)
    assert result["points"] == 0 and len(result["tasks"]) > 1
    assert all(t["points"] == 0 for t in result["tasks"])
    assert "wrote 1 JSON files" in err and "graded 1 in" in err
    assert (tmp_path / "marks" / "kit.json").is_file()
    assert (tmp_path / "marks" / "gradebook.csv").read_text().startswith("student,points")


def test_kit_writes_a_kit_and_refuses_to_overwrite(capsys, tmp_path):
    code, out, _ = run(capsys, "kit", tmp_path / "kit")
    assert code == 0 and out.splitlines()[0] == str(tmp_path / "kit" / "my_capstone.py")
    code, _, err = run(capsys, "kit", tmp_path / "kit")
    assert code == 2 and "is not an empty folder" in err
