"""Each task's check: the solved kit passes all, each planted bug fails its own task only."""

import pytest
from submissions import BUGS, SOLVED, submission

from capstone.course.grade import run_check
from capstone.course.student import load_student
from capstone.course.tasks import TASKS, task


def test_the_solved_kit_passes_every_check():
    module = load_student(SOLVED)
    assert {t.name: run_check(module, t.name) for t in TASKS} == {t.name: None for t in TASKS}


@pytest.mark.parametrize("bug", BUGS)
def test_a_planted_bug_fails_its_task_with_the_smallest_example(bug, tmp_path):
    name = BUGS[bug][0]
    message = run_check(load_student(submission(tmp_path / "s", bug)), name)
    assert message is not None and message.startswith(f"{name}(")
    assert "expected:" in message and "got:" in message


def test_a_bug_in_one_task_does_not_fail_the_tasks_that_call_it(tmp_path):
    # train_step calls image_embedding: checked with the reference image_embedding in place
    module = load_student(submission(tmp_path / "s", "embedding not normalized"))
    assert run_check(module, "image_embedding") is not None
    assert run_check(module, "train_step") is None


def test_a_stub_says_it_is_not_written(tmp_path):
    stub = "def top_k(scores, k):\n    raise NotImplementedError\n"
    (tmp_path / "my_capstone.py").write_text(stub)
    module = load_student(tmp_path)
    assert run_check(module, "top_k") == (
        "not written yet: my_capstone.top_k still raises NotImplementedError"
    )
    assert run_check(module, "idf") == "my_capstone.py has no function idf"


def test_task_names_an_unknown_task():
    with pytest.raises(KeyError, match="no task 'idff'; the tasks: tokenize, idf"):
        task("idff")
