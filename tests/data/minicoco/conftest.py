"""The generated dataset that the tests of `capstone.data.minicoco` read, written once."""

import json
import pickle

import pytest
from minicoco_support import N_IMAGES, SEED

from capstone.data import minicoco


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """(what `generate` returned, the captions file, the descriptor table, the scenes file)."""
    folder = tmp_path_factory.mktemp("minicoco")
    info = minicoco.generate(folder, N_IMAGES, seed=SEED)
    captions = json.loads(info["captions"].read_text())
    with open(info["features"], "rb") as f:
        features = pickle.load(f)
    scenes = json.loads(info["scenes"].read_text())
    return info, captions, features, scenes
