"""The starter kit: ``python -m capstone kit DIR`` writes a student's folder.

- ``my_capstone.py``: one stub per task (`capstone.course.tasks.TASKS`), each with the task's
  text, shapes and formula as its docstring, raising ``NotImplementedError``;
- ``test_my_capstone.py``: the public checks, run with ``pytest`` (they grade the folder as
  ``python -m capstone grade`` does: the same checks, time limits and points);
- ``capstone_kit.ipynb``: a notebook that walks the capstone through the student's functions;
- ``README.md``: start, run, check, submit.

No solution is written: the stubs' bodies raise, and the checks live in capstone.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

from .student import MODULE
from .tasks import TASKS

__all__ = ["KIT_FILES", "write_kit"]

_HEADER = '''"""Your capstone: write every function below, then check them with ``pytest``.

Each function is one task of the course; its docstring says what to compute (shapes and
formula). ``python -m capstone grade .`` (or ``pytest`` here) checks each against the
course's reference on many small inputs and shows the smallest one that fails. Keep the
names and parameters. Do not import ``capstone`` here: using its implementation of a task
is flagged.
"""

import math  # noqa: F401
import string  # noqa: F401

import mygrad as mg  # noqa: F401
import numpy as np  # noqa: F401
from mygrad.nnet.losses import margin_ranking_loss  # noqa: F401
'''

_TESTS = f'''"""Public checks of {MODULE}.py: run ``pytest`` in this folder.

They grade the folder exactly as ``python -m capstone grade`` does (each task in a child
process with a time limit, against capstone.course_math). Course staff check another
folder with ``CAPSTONE_STUDENT=DIR pytest test_{MODULE}.py``.
"""

import os
from pathlib import Path

import pytest

from capstone.course.grade import grade_submission
from capstone.course.tasks import E2E, TASKS

FOLDER = Path(os.environ.get("CAPSTONE_STUDENT") or Path(__file__).parent)


@pytest.fixture(scope="module")
def graded():
    return {{t["task"]: t for t in grade_submission(FOLDER)["tasks"]}}


@pytest.mark.parametrize("task", [t.name for t in TASKS] + [E2E])
def test_task(graded, task):
    assert graded[task]["passed"], graded[task]["feedback"]
'''

_README = f"""# Your capstone

1. Open `{MODULE}.py`: one function per task, each raising `NotImplementedError`. Its
   docstring is the task: what to compute, shapes, formula.
2. Write one, then run `pytest` in this folder: each task passes or shows the smallest input
   it fails on (expected vs got). `pytest -k idf` checks one task.
3. Open `capstone_kit.ipynb` to run the capstone with your functions: your embeddings, your
   training step, your search.
4. With every task written, train and search with your code on the full demo:
   `python -m capstone train --student .` then `python -m capstone search "a dog" --student .`
5. Submit `{MODULE}.py` (only that file is graded).
"""


def _stub(task) -> str:
    doc = textwrap.indent(task.doc.rstrip("\n"), "    ")
    return (
        f"\n\ndef {task.name}{task.signature}:\n"
        f'    """{doc.lstrip()}\n    """\n'
        f'    raise NotImplementedError("{task.name}")\n'
    )


def _cell(kind: str, source: str) -> dict:
    cell = {"cell_type": kind, "metadata": {}, "source": source.strip("\n").splitlines(True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _notebook() -> dict:
    cells = [
        _cell("markdown", f"""
# The capstone, with your functions

Every cell below runs *your* `{MODULE}.py` inside capstone: write the tasks first (`pytest`
tells you which pass). Re-run from the top after editing the module."""),
        _cell("code", f"""
import importlib
import {MODULE} as mine
importlib.reload(mine)

from capstone.course.grade import grade_demo
from capstone.course.student import E2E_CONFIG, end_to_end, student_dataset, train_student
from capstone.dataset import load_dataset

data = load_dataset(grade_demo(), embed_captions=False)  # 1,000 generated images
print(data.describe())"""),
        _cell("markdown", "## Words: your `tokenize` and `idf`"),
        _cell("code", """
caption = data.data.captions[0]
table = mine.idf(data.data.captions)
print(caption, mine.tokenize(caption))
print({w: round(table[w], 3) for w in mine.tokenize(caption) if w in table})"""),
        _cell("markdown", "## Your embeddings and training"),
        _cell("code", """
ds = student_dataset(data, mine, embed_captions=True)  # your idf and caption_embedding
model, val = train_student(mine, ds, E2E_CONFIG, log=lambda e, loss: print(e, round(loss, 4)))"""),
        _cell("markdown", "## Your search: `image_embedding`, `similarity` and `top_k`"),
        _cell("code", """
images = model.embed(ds.data.descriptors[val])  # your image_embedding
query = ds.text.embed_query("two dogs playing in the snow")  # your caption_embedding
scores = [mine.similarity(query, image) for image in images]
for i in mine.top_k(scores, 3):
    print(round(scores[i], 3), ds.data.caption_texts_of_image(val[i])[0])"""),
        _cell("markdown", "## The end-to-end check (as graded)"),
        _cell("code", "end_to_end(mine, data)"),
    ]
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"  # nbformat 4.5 cells carry an id
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


KIT_FILES = (f"{MODULE}.py", f"test_{MODULE}.py", "capstone_kit.ipynb", "README.md")


def write_kit(folder: str | os.PathLike) -> list[Path]:
    """Write the kit into ``folder`` (created; an existing one must be empty).

    Returns
    -------
    list[Path]
        The files written (`KIT_FILES`).

    Raises
    ------
    FileExistsError
        ``folder`` is a file, or a folder with anything in it: nothing is overwritten.
    """
    folder = Path(folder).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(f"{folder} exists and is not an empty folder: choose a new one")
    folder.mkdir(parents=True, exist_ok=True)
    texts = [
        _HEADER + "".join(map(_stub, TASKS)),
        _TESTS,
        json.dumps(_notebook(), indent=1) + "\n",
        _README,
    ]
    paths = [folder / name for name in KIT_FILES]
    for path, text in zip(paths, texts, strict=True):
        path.write_text(text, encoding="utf-8")
    return paths
