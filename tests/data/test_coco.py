"""Tests of capstone.data.coco against small files in the real COCO formats and a dict reference."""

from __future__ import annotations

import json
import pickle
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.data.coco import CocoData, load_captions, load_descriptors

D = 512


def coco_url(image_id: int) -> str:
    return f"http://images.cocodataset.org/train2014/COCO_train2014_{image_id:012d}.jpg"


def image_entry(image_id: int) -> dict:
    """One entry of ``images`` with every field the real file has."""
    return {
        "license": 5,
        "file_name": f"COCO_train2014_{image_id:012d}.jpg",
        "coco_url": coco_url(image_id),
        "height": 480,
        "width": 640,
        "date_captured": "2013-11-14 16:28:13",
        "flickr_url": f"http://farm4.staticflickr.com/{image_id}.jpg",
        "id": image_id,
    }


def captions_doc(images: list[dict], annotations: list[dict]) -> dict:
    return {
        "info": {"description": "tiny COCO for tests", "year": 2014},
        "images": images,
        "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 5}],
        "annotations": annotations,
    }


def write_coco(folder: Path, doc, features, *, captions_bytes: bytes | None = None):
    """Write ``captions_train2014.json`` and ``resnet18_features.pkl`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    captions_path = folder / "captions_train2014.json"
    features_path = folder / "resnet18_features.pkl"
    if captions_bytes is not None:
        captions_path.write_bytes(captions_bytes)
    else:
        captions_path.write_text(json.dumps(doc))
    with open(features_path, "wb") as f:
        pickle.dump(features, f)
    return captions_path, features_path


def make_dataset(
    image_ids, n_captions, missing=(), *, seed=0, extra_descriptor_ids=(), first_caption_id=1
):
    """A captions document and a descriptor table: annotations shuffled, ``missing`` images
    without a descriptor, and descriptors for ``extra_descriptor_ids`` not in the captions."""
    rng = np.random.default_rng(seed)
    images = [image_entry(i) for i in image_ids]
    annotations = []
    cid = first_caption_id
    for image_id, n in zip(image_ids, n_captions, strict=True):
        for j in range(n):
            annotations.append(
                {"image_id": image_id, "id": cid, "caption": f"Caption {j} of image {image_id}."}
            )
            cid += 7  # ids are not consecutive in the real file either
    random.Random(seed).shuffle(annotations)
    features = {
        int(i): rng.normal(size=(1, D)).astype(np.float32)
        for i in [*image_ids, *extra_descriptor_ids]
        if i not in missing
    }
    return captions_doc(images, annotations), features


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


# Ids deliberately out of order; 384029 has no descriptor; 5 to 7 captions each.
IMAGE_IDS = [57870, 9, 384029, 222016, 1000]
N_CAPTIONS = [5, 6, 5, 7, 5]
MISSING = (384029,)


@pytest.fixture
def coco_files(tmp_path):
    """A tiny dataset in the real formats: (captions path, features path, doc, features)."""
    doc, features = make_dataset(IMAGE_IDS, N_CAPTIONS, MISSING, extra_descriptor_ids=[424242])
    captions_path, features_path = write_coco(tmp_path / "coco", doc, features)
    return captions_path, features_path, doc, features


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


def test_load_captions_columns(coco_files):
    cols = load_captions(coco_files[0])
    doc = coco_files[2]
    assert cols["image_id"] == [im["id"] for im in doc["images"]]
    assert cols["coco_url"] == [im["coco_url"] for im in doc["images"]]
    assert cols["caption_id"] == [a["id"] for a in doc["annotations"]]
    assert cols["caption_image_id"] == [a["image_id"] for a in doc["annotations"]]
    assert cols["caption"] == [a["caption"] for a in doc["annotations"]]


def test_load_descriptors_sorted(coco_files):
    ids, desc = load_descriptors(coco_files[1])
    features = coco_files[3]
    assert ids.dtype == np.int64 and desc.dtype == np.float32
    assert ids.tolist() == sorted(features)
    for i, row in zip(ids, desc, strict=True):
        np.testing.assert_array_equal(row, features[int(i)][0])


@settings(max_examples=40, deadline=None)
@given(
    spec=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 6), st.booleans()),
        min_size=1,
        max_size=8,
        unique_by=lambda t: t[0],
    ).filter(lambda s: any(has for _, _, has in s)),
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


def small_doc():
    doc, features = make_dataset([1, 2, 3], [5, 5, 5])
    return doc, features


def expect_error(tmp_path, doc, features, match, *, exc=ValueError, captions_bytes=None):
    captions_path, features_path = write_coco(
        tmp_path, doc, features, captions_bytes=captions_bytes
    )
    with pytest.raises(exc, match=match) as info:
        CocoData.load(captions_path, features_path)
    return info, captions_path, features_path


def named(path: Path, pattern: str) -> str:
    return re.escape(str(path)) + pattern


def test_missing_captions_file(tmp_path):
    doc, features = small_doc()
    _, features_path = write_coco(tmp_path, doc, features)
    missing = tmp_path / "nope" / "captions_train2014.json"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        CocoData.load(missing, features_path)


def test_missing_features_file(tmp_path):
    doc, features = small_doc()
    captions_path, _ = write_coco(tmp_path, doc, features)
    missing = tmp_path / "resnet18_features_gone.pkl"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        CocoData.load(captions_path, missing)


def test_invalid_json(tmp_path):
    doc, features = small_doc()
    text = json.dumps(doc)
    p = tmp_path / "captions_train2014.json"
    expect_error(
        tmp_path,
        doc,
        features,
        named(p, r": not valid JSON"),
        captions_bytes=text[: len(text) // 2].encode(),
    )


def test_invalid_utf8(tmp_path):
    doc, features = small_doc()
    p = tmp_path / "captions_train2014.json"
    expect_error(tmp_path, doc, features, named(p, ": not valid JSON"), captions_bytes=b"\xff\xfe{")


def test_top_level_not_object(tmp_path):
    doc, features = small_doc()
    p = tmp_path / "captions_train2014.json"
    expect_error(tmp_path, doc["images"], features, named(p, ": expected a JSON object"))


@pytest.mark.parametrize("key", ["images", "annotations"])
def test_missing_list(tmp_path, key):
    doc, features = small_doc()
    del doc[key]
    p = tmp_path / "captions_train2014.json"
    expect_error(tmp_path, doc, features, named(p, f": has no '{key}' list"))


def test_list_of_wrong_type(tmp_path):
    doc, features = small_doc()
    doc["annotations"] = {"0": doc["annotations"][0]}
    p = tmp_path / "captions_train2014.json"
    expect_error(tmp_path, doc, features, named(p, ": has no 'annotations' list"))


@pytest.mark.parametrize(
    ("list_name", "index", "field"),
    [
        ("annotations", 3, "caption"),
        ("annotations", 0, "image_id"),
        ("annotations", 14, "id"),
        ("images", 1, "id"),
        ("images", 2, "coco_url"),
    ],
)
def test_entry_missing_field(tmp_path, list_name, index, field):
    doc, features = small_doc()
    del doc[list_name][index][field]
    p = tmp_path / "captions_train2014.json"
    expect_error(
        tmp_path, doc, features, named(p, rf": {list_name}\[{index}\] has no '{field}' field")
    )


def test_entry_not_an_object(tmp_path):
    doc, features = small_doc()
    doc["annotations"][5] = "a dog"
    p = tmp_path / "captions_train2014.json"
    expect_error(tmp_path, doc, features, named(p, r": annotations\[5\] has no 'id' field"))


@pytest.mark.parametrize(
    ("list_name", "index", "field", "value", "shown", "kind"),
    [
        ("annotations", 2, "caption", 5, "5", "str"),
        ("annotations", 7, "caption", None, "None", "str"),
        ("images", 1, "id", "7", "'7'", "int"),
        ("images", 0, "id", 3.0, "3.0", "int"),
        ("images", 2, "id", True, "True", "int"),
        ("images", 2, "id", False, "False", "int"),
        ("annotations", 4, "image_id", "1", "'1'", "int"),
        ("annotations", 9, "id", [1], r"\[1\]", "int"),
        ("images", 1, "coco_url", 17, "17", "str"),
    ],
)
def test_field_of_wrong_type(tmp_path, list_name, index, field, value, shown, kind):
    doc, features = small_doc()
    doc[list_name][index][field] = value
    p = tmp_path / "captions_train2014.json"
    expect_error(
        tmp_path,
        doc,
        features,
        named(p, rf": {list_name}\[{index}\]\.{field} is {shown}, expected {kind}"),
    )


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


@pytest.mark.parametrize("table", [[1, 2, 3], {}, np.zeros((3, 512), np.float32), "features"])
def test_pickle_not_a_dict(tmp_path, table):
    doc, _ = small_doc()
    p = tmp_path / "resnet18_features.pkl"
    expect_error(tmp_path, doc, table, named(p, ": expected a non-empty dict of image id"))


def test_descriptors_of_differing_shapes(tmp_path):
    doc, features = small_doc()
    features[2] = np.zeros((1, 256), np.float32)
    p = tmp_path / "resnet18_features.pkl"
    expect_error(tmp_path, doc, features, named(p, ": descriptors have differing or unexpected"))


def test_descriptor_not_an_array(tmp_path):
    doc, features = small_doc()
    features = {k: "descriptor" for k in features}
    p = tmp_path / "resnet18_features.pkl"
    expect_error(tmp_path, doc, features, named(p, ": descriptors have differing or unexpected"))


@pytest.mark.parametrize("key", ["2", 2.5, True])
def test_descriptor_key_not_an_integer(tmp_path, key):
    doc, features = small_doc()
    features = {key if k == 1 else k: v for k, v in features.items()}
    assert any(type(k) is type(key) for k in features)  # (True == 1: key 1 itself replaced)
    p = tmp_path / "resnet18_features.pkl"
    expect_error(tmp_path, doc, features, named(p, f": key {key!r} is not an integer image id"))


def test_numpy_integer_keys_accepted(tmp_path):
    doc, features = small_doc()
    as_np = {np.int64(k): v for k, v in features.items()}
    a = CocoData.load(*write_coco(tmp_path / "a", doc, features))
    b = CocoData.load(*write_coco(tmp_path / "b", doc, as_np))
    assert a.fingerprint == b.fingerprint


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99])
def test_truncated_pickle(tmp_path, fraction):
    doc, features = small_doc()
    captions_path, features_path = write_coco(tmp_path, doc, features)
    data = features_path.read_bytes()
    features_path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError, match=named(features_path, ": not a readable pickle")):
        CocoData.load(captions_path, features_path)


def test_every_truncation_point_of_a_pickle(tmp_path):
    """Whatever byte the file is cut at, the error is the same clear ValueError."""
    table = {i: np.ones((1, 4), np.float32) for i in range(3)}
    data = pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL)
    p = tmp_path / "f.pkl"
    for cut in range(len(data)):
        p.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=named(p, ": not a readable pickle")):
            load_descriptors(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_descriptors_are_refused_naming_the_image(tmp_path, bad):
    table = {i: np.ones((1, 512), np.float32) for i in (5, 9, 12)}
    table[9][0, 100] = bad
    path = tmp_path / "resnet18_features.pkl"
    path.write_bytes(pickle.dumps(table))
    with pytest.raises(ValueError, match=r"the descriptor of image 9 holds NaN or infinity \(1 "):
        load_descriptors(path)
