"""Grading in child processes: time limits, crashes, points, feedback, the gradebook."""

import csv
import json

import pytest
from submissions import submission

from capstone.course import grade as grading
from capstone.course.grade import (
    MAX_POINTS,
    capstone_imports,
    feedback,
    grade,
    write_results,
)
from capstone.course.kit import write_kit
from capstone.course.tasks import E2E, TASKS

LOOP = "\n\ndef similarity(a, b):\n    while True:\n        pass\n"
CRASH = "\n\ndef top_k(scores, k):\n    import os\n    os._exit(3)\n"


def test_a_loop_and_a_crash_cost_their_tasks_only_and_the_stubs_score_zero(
    demo, tmp_path, monkeypatch
):
    monkeypatch.setattr(grading, "TASK_SECONDS", 2.0)
    stubs = tmp_path / "untouched"
    write_kit(stubs)
    hung = submission(tmp_path / "hung", extra=LOOP + CRASH)
    untouched, hung = grade([stubs, hung], demo=demo)

    assert untouched["points"] == 0 and untouched["percent"] == 0
    said = {t["task"]: t["feedback"] for t in untouched["tasks"]}
    for t in TASKS:
        assert said[t.name] == f"not written yet: my_capstone.{t.name} still raises " \
            "NotImplementedError"  # fmt: skip
    assert said[E2E] == "the pipeline stopped at task idf: my_capstone.idf is not written yet"

    lost = {t["task"]: t["feedback"] for t in hung["tasks"] if not t["passed"]}
    assert lost == {
        "similarity": "similarity: took more than 2 s (time limit): stopped",
        "top_k": "top_k: the process running it died (exit code 3)",
    }
    assert hung["points"] == MAX_POINTS - 10  # the tasks after them were checked and passed


def test_feedback_reads_a_line_per_task_and_the_total():
    result = {
        "folder": "alice", "points": 85, "max_points": 90, "percent": 94.4, "flagged": [],
        "tasks": [{"task": "idf", "points": 0, "max_points": 5, "passed": False,
                   "feedback": "idf(captions=['a'])\n    expected: 1\n    got:      2"}],
    }  # fmt: skip
    assert feedback(result).splitlines() == [
        "my_capstone.py in alice",
        "  idf                   0/5   FAILED",
        "      idf(captions=['a'])",
        "          expected: 1",
        "          got:      2",
        "total 85/90 (94.4%)",
    ]


def _result(student, flagged=()):
    tasks = [{"task": "idf", "points": 5, "max_points": 5, "passed": True, "feedback": None}]
    return {"student": student, "points": 5, "max_points": 5, "percent": 100.0,
            "flagged": list(flagged), "tasks": tasks}  # fmt: skip


def test_the_gradebook_defuses_formulas_and_never_overwrites(tmp_path):
    out = tmp_path / "grades"
    alice = _result("=HYPERLINK(1)", ["-line 1: import capstone"])
    path = write_results([alice, _result("bob")], out)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["student", "points", "max_points", "percent", "flagged", "idf"]
    assert rows[1][0] == "'=HYPERLINK(1)" and rows[1][4] == "'-line 1: import capstone"
    assert json.loads((out / "bob.json").read_text())["points"] == 5
    before = path.read_text()
    with pytest.raises(FileExistsError, match=r"bob\.json exists: choose a new --out folder"):
        write_results([_result("bob")], out)
    with pytest.raises(ValueError, match="two submission folders are named 'x'"):
        write_results([_result("x"), _result("x")], tmp_path / "other")
    assert path.read_text() == before


def test_imports_of_capstone_are_found_in_the_source_not_in_comments(tmp_path):
    source = tmp_path / "my_capstone.py"
    source.write_text(
        "import numpy\n"
        "# import capstone\n"
        "text = 'from capstone import x'\n"
        "from capstone.course_math import idf\n"
        "import importlib\n"
        "m = importlib.import_module('capstone.text.idf')\n"
    )
    assert capstone_imports(source) == [
        "line 4: from capstone.course_math import idf",
        "line 6: importlib.import_module('capstone.text.idf')",
    ]
