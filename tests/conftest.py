"""Test-wide setup: nothing a test does may touch the user's data home or the network."""

import contextlib
import io
import os
from pathlib import Path

import matplotlib
import pytest
from cli_support import N_IMAGES, RUN, TRAIN, no_course_data

from capstone.data import paths
from capstone.frontends.cli import main

matplotlib.use("Agg")  # no screen in CI; figures are inspected, not shown

# mutmut forks one child per mutant. GNU OpenMP is not fork-safe once the parent has started its
# thread pool (the clean run builds faiss indexes): a child's first faiss search then waits
# forever on threads it did not inherit, and the hang counts as a caught mutant. One thread per
# child keeps faiss out of OpenMP's pool.
if "MUTANT_UNDER_TEST" in os.environ:
    import faiss

    faiss.omp_set_num_threads(1)

# --doctest-modules would also import each folder's conftest.py as a module named "conftest",
# and the second such import is an "import file mismatch": they hold fixtures, not examples.
collect_ignore_glob = ["conftest.py", "*/conftest.py", "*/*/conftest.py"]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Point CAPSTONE_HOME at a fresh folder and hide CAPSTONE_DATA for every test."""
    monkeypatch.setenv("CAPSTONE_HOME", str(tmp_path_factory.mktemp("capstone_home")))
    monkeypatch.delenv("CAPSTONE_DATA", raising=False)


@pytest.fixture
def unlistable(monkeypatch):
    """``unlistable(folder)``: listing ``folder`` fails with "Permission denied", as chmod 000
    would even for root (CI runs as root, where chmod stops nothing)."""
    listing = os.scandir

    def refuse(folder: Path) -> None:
        def scandir(path="."):
            if Path(path) == folder:
                raise PermissionError(13, "Permission denied", str(path))
            return listing(path)

        monkeypatch.setattr(os, "scandir", scandir)

    return refuse


# -- a trained tiny demo, for the command-line tests -------------------------------------------


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """A data home with the tiny demo dataset and one trained run ``RUN``; also the demo's
    stdout, stderr and exit code."""
    home = tmp_path_factory.mktemp("cli_home")
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAPSTONE_HOME", str(home))
        no_course_data(mp, home)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["demo", "--images", str(N_IMAGES), "--run", RUN, *TRAIN])
    return home, code, out.getvalue(), err.getvalue()


@pytest.fixture
def home(shared_home, monkeypatch, tmp_path):
    """CAPSTONE_HOME pointed at the shared, trained data home for this test."""
    root, code, _, err = shared_home
    assert code == 0, err
    monkeypatch.setenv("CAPSTONE_HOME", str(root))  # after (so over) conftest's autouse setenv
    no_course_data(monkeypatch, tmp_path)
    return root


@pytest.fixture
def demo_data(shared_home):
    """The folder of the shared tiny demo dataset (for ``--data``); CAPSTONE_HOME untouched."""
    root, code, _, err = shared_home
    assert code == 0, err
    return root / "minicoco"


@pytest.fixture
def fresh_home(monkeypatch, tmp_path):
    """The empty data home of conftest's autouse fixture, guarded from course data.

    Never combine with `home`, which points CAPSTONE_HOME elsewhere."""
    no_course_data(monkeypatch, tmp_path)
    home = paths.data_home()
    assert not home.joinpath("runs").exists()
    return home


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The course grader's demo dataset (`capstone.course.student.GRADE_DEMO_IMAGES` images),
    generated once: grading takes its folder as ``demo`` (tests/course)."""
    from capstone.course.student import GRADE_DEMO_IMAGES
    from capstone.data import minicoco

    folder = tmp_path_factory.mktemp("grade_demo")
    minicoco.generate(folder, GRADE_DEMO_IMAGES)
    return folder


@pytest.fixture
def progress_events(monkeypatch):
    """``progress_events(module)``: replace ``module.Progress`` by a recorder and return the list
    of what every bar is told, in order: ``("enabled", e)``, ``("start", label, total)``,
    ``("update", done)``, ``("finish", summary)`` (the real bar draws only on a terminal)."""
    events = []

    class Recorder:
        def __init__(self, enabled=True):
            events.append(("enabled", enabled))

        def start(self, label, total):
            events.append(("start", label, total))

        def update(self, done):
            events.append(("update", done))

        def finish(self, summary):
            events.append(("finish", summary))

    def record(module) -> list:
        monkeypatch.setattr(module, "Progress", Recorder)
        return events

    return record
