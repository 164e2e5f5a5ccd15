"""The grading demo, generated once for the course tests (grading takes it as ``demo``)."""

import pytest

from capstone.course.student import GRADE_DEMO_IMAGES
from capstone.data import minicoco


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grade_demo")
    minicoco.generate(folder, GRADE_DEMO_IMAGES)
    return folder
