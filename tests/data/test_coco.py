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

from capstone.common.unpickle import UnsafePickle
from capstone.data.coco import CocoData, _packed, _unpacked, load_captions, load_descriptors

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
    expect_error(
        tmp_path,
        doc,
        features,
        named(p, r": descriptors have differing shapes: image 2 has \(1, 256\), image 1 \(1, "),
    )


@pytest.mark.parametrize("shape", [(2, 256), (1, 0), (1, 1, 512), ()])
def test_descriptors_of_an_unexpected_shape(tmp_path, shape):
    doc, features = small_doc()
    features = {k: np.ones(shape, np.float32) for k in features}
    p = tmp_path / "resnet18_features.pkl"
    message = rf": the descriptor of image 1 has shape {re.escape(str(shape))}, expected \(1, D\)"
    expect_error(tmp_path, doc, features, named(p, message))


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("descriptor", r"str \('descriptor'\)"),
        ([0.5] * 512, r"list \(\[0\.5, 0\.5, .*\.\.\.\)"),
        (np.ones((1, 512), np.int32), r"int32 array \(array\(\[\[1, 1, .*\.\.\.\)"),
    ],
)
def test_descriptor_not_a_float_array_names_the_image_and_type(tmp_path, value, kind):
    doc, features = small_doc()
    features[3] = value
    p = tmp_path / "resnet18_features.pkl"
    expect_error(
        tmp_path, doc, features, named(p, rf": the descriptor of image 3 is a {kind}, not a float")
    )


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


# ---------------------------------------------------------------------------------------------
# The descriptor pickle is read with a restricted unpickler.


def course_pickle(path: Path, protocol: int) -> dict:
    """A pickle written as the course's was: ``pickle.dump`` of {int: (1, 512) float32}."""
    rng = np.random.default_rng(protocol)
    table = {int(i): rng.normal(size=(1, D)).astype(np.float32) for i in (57870, 384029, 9)}
    table[222016] = np.asfortranarray(np.arange(D, dtype=np.float64).reshape(1, D))
    with open(path, "wb") as f:
        pickle.dump(table, f, protocol=protocol)
    return table


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_course_pickles_load_exactly_as_an_unrestricted_load(tmp_path, protocol):
    path = tmp_path / "resnet18_features.pkl"
    course_pickle(path, protocol)
    with open(path, "rb") as f:
        table = pickle.load(f)  # what the loader did before: trusted test data here
    ids, descriptors = load_descriptors(path)
    assert ids.tolist() == sorted(table)
    for i, image_id in enumerate(ids.tolist()):
        np.testing.assert_array_equal(descriptors[i], table[image_id].astype(np.float32)[0])


class Marker:
    """Unpickles as ``os.system("touch MARKER")`` (``__reduce__`` is how hostile pickles do it)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


class Writer:
    """Unpickles as ``pathlib.Path(MARKER).write_text("x")``: another way to a side effect."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (self.marker, "x")


@pytest.mark.parametrize(
    ("hostile", "global_name"), [(Marker, r"(posix|os|nt)\.system"), (Writer, r"pathlib\.Path")]
)
@pytest.mark.parametrize("where", ["value", "key", "top"])
def test_a_pickle_that_runs_code_is_refused_before_running(tmp_path, hostile, global_name, where):
    marker = tmp_path / "MARKER"
    evil = hostile(marker)
    table = {1: np.ones((1, D), np.float32), 2: np.ones((1, D), np.float32)}
    obj = {"value": {**table, 3: evil}, "key": {**table, evil: 1}, "top": evil}[where]
    path = tmp_path / "resnet18_features.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(UnsafePickle, match=named(path, rf": refusing to load: .*{global_name}")):
        load_descriptors(path)
    assert not marker.exists()


def test_an_info_on_a_hostile_pickle_runs_nothing(tmp_path, capsys):
    """From the command line: exit 2, one line naming the global and the file, no side effect."""
    from capstone.frontends.cli import main

    marker = tmp_path / "MARKER"
    doc, features = small_doc()
    _, features_path = write_coco(tmp_path, doc, {**features, 4: Marker(marker)})
    assert main(["info", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {features_path}: refusing to load") and "system" in err
    assert "Traceback" not in err and not marker.exists()


@pytest.mark.parametrize(
    ("forged", "message"),
    [
        # numpy.ndarray called directly, with a huge shape: would allocate (lazily) 4 TB
        (
            b"\x80\x04cnumpy\nndarray\n(J\x00\x00\x00\x40J\x00\x00\x00\x40\x86\x85R.",
            "not a readable pickle",
        ),
        # _reconstruct of a 1 GB array whose data are not in the file: nothing is allocated,
        # an empty array comes back (and is no dict of descriptors)
        (
            b"\x80\x04cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
            b"J\x00\x00\x00\x40\x85C\x01b\x87R.",
            "expected a non-empty dict",
        ),
        # an object array: it could carry any object the pickle builds
        (
            b"\x80\x04cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R.",
            r"not a readable pickle \(an array of dtype 'O8'",
        ),
        # a bytes object claiming 50 GB: refused (MemoryError) or truncated, never read
        (b"\x80\x04\x8e" + (50 << 30).to_bytes(8, "little") + b"abc", "not a readable pickle"),
        # _codecs.encode with another codec than latin1
        (
            b"\x80\x04c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.",
            r"not a readable pickle \(_codecs.encode with 'rot13'",
        ),
    ],
)
def test_numpy_globals_are_checked_stand_ins(tmp_path, forged, message):
    path = tmp_path / "f.pkl"
    path.write_bytes(forged)
    with pytest.raises(ValueError, match=named(path, f": {message}")):
        load_descriptors(path)


# ---------------------------------------------------------------------------------------------
# Data that can embed nothing, and files that share no image.


def test_all_zero_descriptors_are_refused(tmp_path):
    doc, features = small_doc()
    zero = {k: np.zeros_like(v) for k, v in features.items()}
    p = tmp_path / "resnet18_features.pkl"
    expect_error(tmp_path, doc, zero, named(p, ": every descriptor is all zero"))


def test_a_few_all_zero_descriptors_are_a_warning(tmp_path):
    doc, features = small_doc()
    features[2] = np.zeros((1, D), np.float32)
    captions_path, features_path = write_coco(tmp_path, doc, features)
    with pytest.warns(UserWarning, match=named(features_path, r": 1 of 3 images have an all-zero")):
        data = CocoData.load(captions_path, features_path)
    assert data.n_images == 3 and not data.descriptor(2).any()


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


def test_a_numpy_1_pickle_loads_too(tmp_path):
    """NumPy 1.x names its rebuilding functions numpy.core.*; NumPy 2 numpy._core.*."""
    table = {5: np.arange(D, dtype=np.float32).reshape(1, D), 7: np.ones((1, D), np.float32)}
    data = pickle.dumps(table, protocol=2)
    assert b"numpy._core.multiarray" in data
    path = tmp_path / "resnet18_features.pkl"
    path.write_bytes(data.replace(b"numpy._core.", b"numpy.core."))
    ids, descriptors = load_descriptors(path)
    assert ids.tolist() == [5, 7] and np.array_equal(descriptors, np.concatenate([*table.values()]))


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.integers(0, 10**9), st.sampled_from([np.float32, np.float64]), min_size=1, max_size=30
    ),
    st.integers(1, 9),
)
def test_load_descriptors_equals_the_stacked_and_sorted_table(tmp_path_factory, dtypes, width):
    """Filled row by row in id order: the same float32 matrix as stacking the table's arrays
    and sorting them by id (mixed float64 and float32 arrays, any key order)."""
    rng = np.random.default_rng(len(dtypes))
    table = {k: rng.normal(size=(1, width)).astype(t) for k, t in dtypes.items()}
    path = tmp_path_factory.mktemp("pkl") / "features.pkl"
    path.write_bytes(pickle.dumps(table))
    ids, descriptors = load_descriptors(path)
    expected_ids = np.array(list(table), dtype=np.int64)
    expected = np.asarray(list(table.values()), dtype=np.float32).reshape(len(table), -1)
    order = np.argsort(expected_ids)
    np.testing.assert_array_equal(ids, expected_ids[order])
    assert descriptors.dtype == np.float32
    np.testing.assert_array_equal(descriptors, expected[order])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=20))
def test_packed_strings_unpack_to_equal_strings(strings):
    assert _unpacked(*_packed(iter(strings))) == strings
