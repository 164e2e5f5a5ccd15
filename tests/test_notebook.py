"""The course notebook runs top to bottom on the demo data, so it cannot rot."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "capstone.ipynb"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The kernel's CAPSTONE_HOME: a fresh folder, nothing written to the user's data home.

    conftest's autouse fixture is per test, so it is not set yet when the module's notebook
    runs: the kernel (which inherits this process's environment) gets its own here."""
    return tmp_path_factory.mktemp("nb_home")


@pytest.fixture(scope="module")
def executed(tmp_path_factory, home):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path_factory.mktemp("nb"))}},
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAPSTONE_HOME", str(home))
        mp.delenv("CAPSTONE_DATA", raising=False)
        client.execute()
    return nb


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def text_of(output) -> str:
    """What a reader sees of one output as text (printed, or a value's plain repr)."""
    return output.get("text", "") + output.get("data", {}).get("text/plain", "")


def test_every_cell_runs_without_error(executed):
    code = code_cells(executed)
    assert code and all(c.execution_count for c in code)
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors


def test_notebook_uses_its_own_demo_data(executed, home):
    # `load_dataset(demo=True)` at its default size, in the kernel's fresh home: not a demo
    # of another size that a data home may already hold
    text = "".join(text_of(o) for c in code_cells(executed) for o in c.outputs)
    assert f"data: {home / 'minicoco'} [demo]" in text


def test_notebook_shows_metrics_and_an_image_grid(executed):
    text = "".join(text_of(o) for c in code_cells(executed) for o in c.outputs)
    assert "R@1" in text and "chance" in text
    pngs = [o for c in code_cells(executed) for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 2  # the training curves and the result grid


def test_nothing_is_written_to_stderr(executed):
    # a warning (noggin's about live plotting with the inline backend, a deprecation, ...)
    # or a progress bar: the notebook keeps its cells to what it means to show
    stderr = [
        (i, o.text)
        for i, c in enumerate(executed.cells)
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream" and o.name == "stderr"
    ]
    assert not stderr, stderr


def test_outputs_are_formatted_for_reading(executed):
    # numbers are rounded (no 0.41041281819343567), and no cell echoes a raw value
    for i, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        for o in cell.outputs:
            text = text_of(o)
            assert not re.search(r"\d\.\d{6,}", text), (i, text)
            if o.output_type == "execute_result":
                assert not re.match(r"[(\[{]", text), (i, text)


def test_the_last_cell_ends_with_a_summary_not_a_value(executed):
    last = code_cells(executed)[-1]
    assert last.outputs
    assert all(o.output_type == "stream" and o.name == "stdout" for o in last.outputs), last.outputs
    assert "loaded back" in "".join(o.text for o in last.outputs)
