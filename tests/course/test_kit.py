"""The starter kit: one stub per task, no solution, public checks that run under pytest."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capstone.course.kit import KIT_FILES, write_kit
from capstone.course.student import GRADE_DEMO_IMAGES
from capstone.course.tasks import TASKS


def test_every_task_is_a_documented_stub_that_raises(tmp_path):
    write_kit(tmp_path / "kit")
    tree = ast.parse((tmp_path / "kit" / "my_capstone.py").read_text())
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    assert list(functions) == [t.name for t in TASKS]
    for t in TASKS:
        _, body = functions[t.name].body  # a docstring and one statement: no solution
        assert ast.get_docstring(functions[t.name]).startswith(t.doc.splitlines()[0])
        assert isinstance(body, ast.Raise) and body.exc.func.id == "NotImplementedError"
    notebook = json.loads((tmp_path / "kit" / "capstone_kit.ipynb").read_text())
    assert notebook["nbformat"] == 4 and "import my_capstone as mine" in "".join(
        notebook["cells"][1]["source"]
    )


def test_a_kit_is_written_only_into_a_new_or_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not an empty folder"):
        write_kit(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert [p.name for p in write_kit(tmp_path / "new")] == list(KIT_FILES)


def test_the_public_checks_run_under_plain_pytest(tmp_path, demo):
    kit = tmp_path / "kit"
    write_kit(kit)
    # the grading demo is found in the cache of CAPSTONE_HOME: point it at the generated one
    home = tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    os.symlink(demo, home / "cache" / f"course-demo-{GRADE_DEMO_IMAGES}")
    root = Path(__file__).parents[2]
    env = {**os.environ, "CAPSTONE_HOME": str(home), "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_capstone.py"],
        cwd=kit, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{len(TASKS) + 1} failed" in done.stdout
    assert "not written yet: my_capstone.idf still raises NotImplementedError" in done.stdout
