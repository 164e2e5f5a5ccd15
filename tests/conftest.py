"""Test-wide setup: nothing a test does may touch the user's data home or the network."""

import matplotlib
import pytest

matplotlib.use("Agg")  # no screen in CI; figures are inspected, not shown


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Point CAPSTONE_HOME at a fresh folder and hide CAPSTONE_DATA for every test."""
    monkeypatch.setenv("CAPSTONE_HOME", str(tmp_path_factory.mktemp("capstone_home")))
    monkeypatch.delenv("CAPSTONE_DATA", raising=False)
