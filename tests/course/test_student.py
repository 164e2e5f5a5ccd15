"""The student's pipeline: their functions trained and measured end to end, borrowed code."""

import re

import pytest
from submissions import SOLVED, submission

from capstone.course.student import E2E_BAR, StudentError, end_to_end, load_student
from capstone.dataset import load_dataset


@pytest.fixture(scope="module")
def data(demo):
    return load_dataset(demo, embed_captions=False)


def test_the_solved_pipeline_clears_the_bar_with_unit_embeddings(data):
    result = end_to_end(load_student(SOLVED), data)
    assert result["r10"] >= E2E_BAR + 0.1  # the margin the bar leaves (measured: 0.69)
    assert result["norms"] == pytest.approx([1, 1], abs=1e-3)


def test_a_flipped_margin_trains_away_from_the_true_image(data, tmp_path):
    result = end_to_end(load_student(submission(tmp_path / "s", "margin sign flipped")), data)
    assert result["r10"] < 0.05  # below chance (200 images: 0.05)


def test_unnormalized_embeddings_are_seen_in_the_norms(data, tmp_path):
    result = end_to_end(load_student(submission(tmp_path / "s", "embedding not normalized")), data)
    assert result["norms"][0] > 1.5


def test_a_failing_function_stops_the_pipeline_naming_its_task(data, tmp_path):
    broken = "\n\ndef make_triples(image_of, image_ids, rng):\n    return 1 / 0\n"
    module = load_student(submission(tmp_path / "s", extra=broken))
    said = "task make_triples: my_capstone.make_triples failed: ZeroDivisionError"
    with pytest.raises(StudentError, match=re.escape(said)):
        end_to_end(module, data)


def test_a_module_that_does_not_import_says_why(tmp_path):
    (tmp_path / "my_capstone.py").write_text("import numpy as np\nnp.nothing_here\n")
    with pytest.raises(StudentError, match="does not import: AttributeError"):
        load_student(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no my_capstone\.py in it"):
        load_student(tmp_path / "..")
