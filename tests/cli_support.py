"""Helpers of the command-line tests: run ``capstone.frontends.cli.main`` in-process, read output.

The fixtures that give these tests a trained tiny demo (``shared_home``, ``home``,
``demo_data``, ``fresh_home``) are in conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capstone.data import paths
from capstone.frontends.cli import main

RUN = "tiny"
N_IMAGES = 300  # the demo drops one image without descriptors: 299 remain
TRAIN = ["--epochs", "1", "--batch-size", "64"]


def no_course_data(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    """Never pick up a real cogworks-data cache of the machine running the tests."""
    mp.setattr(paths, "COGWORKS_CACHE", tmp / "no_cog_data")
    mp.delenv("CAPSTONE_DATA", raising=False)


def run(capsys, *argv):
    """``main(argv)`` -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    assert err == ""  # --json: nothing but the JSON, no progress lines
    return json.loads(out)


def results_json(capsys, *argv):
    """The result rows of ``search`` or ``similar --json`` (beside the query's facts)."""
    report = run_json(capsys, *argv)
    assert set(report) - {"warnings"} == {
        "run",
        "images",
        "n_images",
        "answered_by",
        "ignored_words",
        "results",
    }
    return report["results"]


def argparse_exit(capsys, *argv):
    """Exit status and stderr of an argparse rejection (SystemExit)."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    return info.value.code, capsys.readouterr().err
