"""Tests of capstone.data.coco against small files in the real COCO formats and a dict reference.

The files themselves, read and checked, are the tests of `capstone.data.coco_files`
(``test_coco_files.py``); the tiny dataset and its writers are in ``coco_support.py``.
"""

from __future__ import annotations

import pickle
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from coco_support import IMAGE_IDS, D, image_entry, make_dataset, named, small_doc, write_coco
from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.data.coco import CocoData, _packed, _unpacked


class Reference:
    """The facts of a dataset, computed with plain dicts straight from the JSON and pickle."""

    def __init__(self, doc, features):
        kept = {im["id"] for im in doc["images"] if im["id"] in features}
        self.image_ids = sorted(kept)
        self.urls = {im["id"]: im["coco_url"] for im in doc["images"] if im["id"] in kept}
        self.captions_of = {i: [] for i in self.image_ids}
        self.image_of, self.caption = {}, {}
        for ann in doc["annotations"]:  # file order
            if ann["image_id"] in kept:
                self.captions_of[ann["image_id"]].append(ann["id"])
                self.image_of[ann["id"]] = ann["image_id"]
                self.caption[ann["id"]] = ann["caption"]
        self.descriptor = {i: features[i].reshape(-1) for i in self.image_ids}
        self.n_dropped_images = len(doc["images"]) - len(kept)
        self.n_dropped_captions = len(doc["annotations"]) - len(self.image_of)


def check_against_reference(data: CocoData, ref: Reference):
    assert data.image_ids.dtype == np.int64
    assert data.image_ids.tolist() == ref.image_ids
    assert data.n_images == len(ref.image_ids)
    assert data.n_captions == len(ref.image_of)
    assert data.n_dropped_images == ref.n_dropped_images
    assert data.n_dropped_captions == ref.n_dropped_captions
    assert data.urls == [ref.urls[i] for i in ref.image_ids]
    assert data.descriptors.dtype == np.float32
    assert data.descriptors.shape == (len(ref.image_ids), D)
    # Captions grouped by image (in image order), file order kept inside an image.
    expected_ids = [c for i in ref.image_ids for c in ref.captions_of[i]]
    assert data.caption_ids.tolist() == expected_ids
    assert data.captions == [ref.caption[c] for c in expected_ids]
    counts = [len(ref.captions_of[i]) for i in ref.image_ids]
    assert data.caption_offsets.tolist() == np.concatenate([[0], np.cumsum(counts)]).tolist()
    assert data.caption_image.tolist() == [
        ref.image_ids.index(ref.image_of[c]) for c in expected_ids
    ]
    for n, image_id in enumerate(ref.image_ids):
        assert data.captions_of(image_id) == ref.captions_of[image_id]
        assert data.url(image_id) == ref.urls[image_id]
        np.testing.assert_array_equal(data.descriptor(image_id), ref.descriptor[image_id])
        assert data.caption_texts_of_image(n) == [ref.caption[c] for c in ref.captions_of[image_id]]
        assert int(data.image_index(image_id)) == n
    for caption_id, image_id in ref.image_of.items():
        assert data.image_of(caption_id) == image_id
        assert data.caption(caption_id) == ref.caption[caption_id]
        assert data.caption_ids[data.caption_index(caption_id)] == caption_id


@pytest.fixture
def coco(coco_files):
    return CocoData.load(*coco_files[:2])


def test_fixture_is_shuffled(coco_files):
    """Guard for the tests below: grouping is only tested if the file is not grouped already."""
    doc = coco_files[2]
    image_order = [a["image_id"] for a in doc["annotations"]]
    assert image_order != sorted(image_order, key=IMAGE_IDS.index)
    assert image_order != sorted(image_order)


def test_load_counts(coco):
    assert coco.n_images == 4
    assert coco.n_captions == 5 + 6 + 7 + 5
    assert coco.n_dropped_images == 1
    assert coco.n_dropped_captions == 5
    assert coco.image_ids.tolist() == [9, 1000, 57870, 222016]
    assert len(coco.urls) == len(coco.caption_offsets) - 1 == 4
    assert coco.caption_offsets.tolist() == [0, 6, 11, 16, 23]


def test_load_matches_dict_reference(coco_files, coco):
    check_against_reference(coco, Reference(coco_files[2], coco_files[3]))


def test_captions_keep_file_order_within_image(coco_files, coco):
    doc = coco_files[2]
    in_file = [a["id"] for a in doc["annotations"] if a["image_id"] == 222016]
    assert coco.captions_of(222016) == in_file
    assert in_file != sorted(in_file)  # the shuffle made file order differ from id order


def test_url_and_descriptor_examples(coco_files, coco):
    assert coco.url(57870) == (
        "http://images.cocodataset.org/train2014/COCO_train2014_000000057870.jpg"
    )
    d = coco.descriptor(1000)
    assert d.shape == (D,) and d.dtype == np.float32
    np.testing.assert_array_equal(d, coco_files[3][1000][0])


def test_array_lookups(coco):
    idx = coco.image_index(np.array([222016, 9]))
    assert idx.tolist() == [3, 0]
    some = coco.caption_ids[[4, 0, 20]]
    assert coco.caption_index(some).tolist() == [4, 0, 20]


@pytest.mark.parametrize(
    ("method", "bad_id", "what"),
    [
        ("captions_of", 123456, "image id"),
        ("url", 8, "image id"),
        ("descriptor", 10**9, "image id"),
        ("captions_of", 384029, "image id"),  # dropped: it has no descriptor
        ("image_of", 2, "caption id"),
        ("caption", -1, "caption id"),
    ],
)
def test_unknown_id_is_keyerror_naming_it(coco, method, bad_id, what):
    with pytest.raises(KeyError, match=rf"unknown {what} {bad_id}\b"):
        getattr(coco, method)(bad_id)


def test_unknown_id_in_array_names_first_missing(coco):
    with pytest.raises(KeyError, match=r"unknown image id 77\b"):
        coco.image_index(np.array([9, 77, 78]))


def test_non_integer_id_is_typeerror(coco):
    with pytest.raises(TypeError, match="image ids must be integers"):
        coco.url("9")


def test_fingerprint_stable_across_loads(coco_files):
    a = CocoData.load(*coco_files[:2])
    b = CocoData.load(*coco_files[:2])
    assert a is not b
    assert a.fingerprint == b.fingerprint
    assert re.fullmatch(r"[0-9a-f]{16}", a.fingerprint)


def test_fingerprint_changes_with_a_descriptor(coco_files, tmp_path):
    captions_path, features_path, _, features = coco_files
    before = CocoData.load(captions_path, features_path).fingerprint
    changed = {k: v.copy() for k, v in features.items()}
    changed[9][0, 100] += 1e-3
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps(changed))
    assert CocoData.load(captions_path, other).fingerprint != before


def test_fingerprint_changes_with_dropped_image(coco_files, tmp_path):
    captions_path, features_path, _, features = coco_files
    fewer = {k: v for k, v in features.items() if k != 9}
    other = tmp_path / "fewer.pkl"
    other.write_bytes(pickle.dumps(fewer))
    assert (
        CocoData.load(captions_path, other).fingerprint
        != CocoData.load(captions_path, features_path).fingerprint
    )


def test_descriptor_of_shape_512_accepted(tmp_path):
    """Rows of shape (512,) rather than (1, 512) give the same data."""
    doc, features = make_dataset([3, 1], [5, 5])
    a = CocoData.load(*write_coco(tmp_path / "a", doc, features))
    b = CocoData.load(*write_coco(tmp_path / "b", doc, {k: v[0] for k, v in features.items()}))
    np.testing.assert_array_equal(a.descriptors, b.descriptors)
    assert a.fingerprint == b.fingerprint


@settings(max_examples=40, deadline=None)
@given(
    spec=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 6), st.booleans()),
        min_size=1,
        max_size=8,
        unique_by=lambda t: t[0],
        # at least one caption of an image with a descriptor: else there is nothing to load
    ).filter(lambda s: any(has and n for _, n, has in s)),
    seed=st.integers(0, 2**16),
)
def test_load_matches_reference_hypothesis(spec, seed):
    image_ids = [i for i, _, _ in spec]
    doc, features = make_dataset(
        image_ids,
        [n for _, n, _ in spec],
        missing={i for i, _, has in spec if not has},
        seed=seed,
        first_caption_id=seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = CocoData.load(*write_coco(Path(tmp), doc, features))
    check_against_reference(data, Reference(doc, features))


# ---------------------------------------------------------------------------------------------
# Bad inputs: a clear error naming the file and the field or entry.


def expect_error(tmp_path, doc, features, match, *, exc=ValueError, captions_bytes=None):
    captions_path, features_path = write_coco(
        tmp_path, doc, features, captions_bytes=captions_bytes
    )
    with pytest.raises(exc, match=match) as info:
        CocoData.load(captions_path, features_path)
    return info, captions_path, features_path


def test_duplicate_image_ids(tmp_path):
    doc, features = small_doc()
    doc["images"].append(image_entry(2))
    p = tmp_path / "captions_train2014.json"
    expect_error(tmp_path, doc, features, named(p, r": images\[\]\.id values are not unique"))


def test_annotation_of_unknown_image(tmp_path):
    doc, features = small_doc()
    doc["annotations"][4]["image_id"] = 999
    p = tmp_path / "captions_train2014.json"
    expect_error(
        tmp_path,
        doc,
        features,
        named(p, r": annotations\[4\]\.image_id 999 is not the id of any entry of 'images'"),
    )


def test_annotation_of_unknown_image_larger_than_all(tmp_path):
    """An id past the largest image id must not index out of bounds."""
    doc, features = small_doc()
    doc["annotations"][0]["image_id"] = 10**12
    p = tmp_path / "captions_train2014.json"
    expect_error(tmp_path, doc, features, named(p, rf": annotations\[0\]\.image_id {10**12} is"))


def test_numpy_integer_keys_accepted(tmp_path):
    doc, features = small_doc()
    as_np = {np.int64(k): v for k, v in features.items()}
    a = CocoData.load(*write_coco(tmp_path / "a", doc, features))
    b = CocoData.load(*write_coco(tmp_path / "b", doc, as_np))
    assert a.fingerprint == b.fingerprint


# ---------------------------------------------------------------------------------------------
# Files that share no image, and a captions file without captions.


def test_captions_and_descriptors_of_disjoint_images(tmp_path):
    doc, _ = make_dataset([1, 2, 3, 4, 5], [5] * 5)
    _, features = make_dataset([11, 12, 13, 14, 15], [5] * 5)
    info, captions_path, features_path = expect_error(
        tmp_path, doc, features, r"no caption has a descriptor"
    )
    message = str(info.value)
    assert str(captions_path) in message and str(features_path) in message
    assert "images 1, 2, 3, ..." in message and "images 11, 12, 13, ..." in message


def test_a_captions_file_without_captions(tmp_path):
    doc, features = small_doc()
    doc["annotations"] = []
    p = tmp_path / "captions_train2014.json"
    expect_error(tmp_path, doc, features, named(p, r": its 'annotations' list is empty"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=20))
def test_packed_strings_unpack_to_equal_strings(strings):
    assert _unpacked(*_packed(iter(strings))) == strings
