"""The tiny COCO files the tests of `capstone.data.coco` and `capstone.data.coco_files` read."""

import pytest
from coco_support import IMAGE_IDS, MISSING, N_CAPTIONS, make_dataset, write_coco


@pytest.fixture
def coco_files(tmp_path):
    """A tiny dataset in the real formats: (captions path, features path, doc, features)."""
    doc, features = make_dataset(IMAGE_IDS, N_CAPTIONS, MISSING, extra_descriptor_ids=[424242])
    captions_path, features_path = write_coco(tmp_path / "coco", doc, features)
    return captions_path, features_path, doc, features
