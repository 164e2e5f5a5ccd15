"""The feedback of a failing comparison, as the student reads it from the grader."""

import re

from submissions import submission

from capstone.course.grade import run_check
from capstone.course.student import load_student


def test_feedback_shows_the_failing_input_expected_and_got(tmp_path):
    message = run_check(load_student(submission(tmp_path / "s", "idf natural log")), "idf")
    assert re.search(r"expected: \{'a': 0\.30103\}\n +got: +\{'a': 0\.693147\}", message), message
