"""Tests of capstone.data.coco_files: the captions JSON and the descriptor pickle read and
checked, every problem an error naming the file and the entry or image."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from coco_support import D, named, small_doc, write_coco
from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.common.unpickle import UnsafePickle
from capstone.data.coco_files import load_captions, load_descriptors


def captions_error(tmp_path, doc, match, *, captions_bytes=None):
    """`load_captions` of ``doc`` written as JSON (or of ``captions_bytes``) fails matching."""
    captions_path, _ = write_coco(tmp_path, doc, {}, captions_bytes=captions_bytes)
    with pytest.raises(ValueError, match=match):
        load_captions(captions_path)


def descriptors_error(tmp_path, features, match):
    """`load_descriptors` of ``features`` pickled fails matching."""
    path = tmp_path / "resnet18_features.pkl"
    path.write_bytes(pickle.dumps(features))
    with pytest.raises(ValueError, match=match):
        load_descriptors(path)


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


def test_missing_captions_file(tmp_path):
    missing = tmp_path / "nope" / "captions_train2014.json"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_captions(missing)


def test_missing_features_file(tmp_path):
    missing = tmp_path / "resnet18_features_gone.pkl"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_descriptors(missing)


def test_invalid_json(tmp_path):
    doc, _ = small_doc()
    text = json.dumps(doc)
    p = tmp_path / "captions_train2014.json"
    captions_error(
        tmp_path,
        doc,
        named(p, r": not valid JSON"),
        captions_bytes=text[: len(text) // 2].encode(),
    )


def test_invalid_utf8(tmp_path):
    doc, _ = small_doc()
    p = tmp_path / "captions_train2014.json"
    captions_error(tmp_path, doc, named(p, ": not valid JSON"), captions_bytes=b"\xff\xfe{")


def test_top_level_not_object(tmp_path):
    doc, _ = small_doc()
    p = tmp_path / "captions_train2014.json"
    captions_error(tmp_path, doc["images"], named(p, ": expected a JSON object"))


@pytest.mark.parametrize("key", ["images", "annotations"])
def test_missing_list(tmp_path, key):
    doc, _ = small_doc()
    del doc[key]
    p = tmp_path / "captions_train2014.json"
    captions_error(tmp_path, doc, named(p, f": has no '{key}' list"))


def test_list_of_wrong_type(tmp_path):
    doc, _ = small_doc()
    doc["annotations"] = {"0": doc["annotations"][0]}
    p = tmp_path / "captions_train2014.json"
    captions_error(tmp_path, doc, named(p, ": has no 'annotations' list"))


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
    doc, _ = small_doc()
    del doc[list_name][index][field]
    p = tmp_path / "captions_train2014.json"
    captions_error(tmp_path, doc, named(p, rf": {list_name}\[{index}\] has no '{field}' field"))


def test_entry_not_an_object(tmp_path):
    doc, _ = small_doc()
    doc["annotations"][5] = "a dog"
    p = tmp_path / "captions_train2014.json"
    captions_error(tmp_path, doc, named(p, r": annotations\[5\] has no 'id' field"))


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
    doc, _ = small_doc()
    doc[list_name][index][field] = value
    p = tmp_path / "captions_train2014.json"
    captions_error(
        tmp_path,
        doc,
        named(p, rf": {list_name}\[{index}\]\.{field} is {shown}, expected {kind}"),
    )


@pytest.mark.parametrize("table", [[1, 2, 3], {}, np.zeros((3, 512), np.float32), "features"])
def test_pickle_not_a_dict(tmp_path, table):
    p = tmp_path / "resnet18_features.pkl"
    descriptors_error(tmp_path, table, named(p, ": expected a non-empty dict of image id"))


def test_descriptors_of_differing_shapes(tmp_path):
    _, features = small_doc()
    features[2] = np.zeros((1, 256), np.float32)
    p = tmp_path / "resnet18_features.pkl"
    descriptors_error(
        tmp_path,
        features,
        named(p, r": descriptors have differing shapes: image 2 has \(1, 256\), image 1 \(1, "),
    )


@pytest.mark.parametrize("shape", [(2, 256), (1, 0), (1, 1, 512), ()])
def test_descriptors_of_an_unexpected_shape(tmp_path, shape):
    _, features = small_doc()
    features = {k: np.ones(shape, np.float32) for k in features}
    p = tmp_path / "resnet18_features.pkl"
    message = rf": the descriptor of image 1 has shape {re.escape(str(shape))}, expected \(1, D\)"
    descriptors_error(tmp_path, features, named(p, message))


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("descriptor", r"str \('descriptor'\)"),
        ([0.5] * 512, r"list \(\[0\.5, 0\.5, .*\.\.\.\)"),
        (np.ones((1, 512), np.int32), r"int32 array \(array\(\[\[1, 1, .*\.\.\.\)"),
    ],
)
def test_descriptor_not_a_float_array_names_the_image_and_type(tmp_path, value, kind):
    _, features = small_doc()
    features[3] = value
    p = tmp_path / "resnet18_features.pkl"
    descriptors_error(
        tmp_path, features, named(p, rf": the descriptor of image 3 is a {kind}, not a float")
    )


@pytest.mark.parametrize("key", ["2", 2.5, True])
def test_descriptor_key_not_an_integer(tmp_path, key):
    _, features = small_doc()
    features = {key if k == 1 else k: v for k, v in features.items()}
    assert any(type(k) is type(key) for k in features)  # (True == 1: key 1 itself replaced)
    p = tmp_path / "resnet18_features.pkl"
    descriptors_error(tmp_path, features, named(p, f": key {key!r} is not an integer image id"))


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99])
def test_truncated_pickle(tmp_path, fraction):
    doc, features = small_doc()
    _, features_path = write_coco(tmp_path, doc, features)
    data = features_path.read_bytes()
    features_path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError, match=named(features_path, ": not a readable pickle")):
        load_descriptors(features_path)


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


def test_all_zero_descriptors_are_refused(tmp_path):
    _, features = small_doc()
    zero = {k: np.zeros_like(v) for k, v in features.items()}
    p = tmp_path / "resnet18_features.pkl"
    descriptors_error(tmp_path, zero, named(p, ": every descriptor is all zero"))


def test_a_few_all_zero_descriptors_are_a_warning(tmp_path):
    _, features = small_doc()
    features[2] = np.zeros((1, D), np.float32)
    path = tmp_path / "resnet18_features.pkl"
    path.write_bytes(pickle.dumps(features))
    with pytest.warns(UserWarning, match=named(path, r": 1 of 3 images have an all-zero")):
        ids, descriptors = load_descriptors(path)
    assert ids.tolist() == [1, 2, 3] and not descriptors[1].any() and descriptors[[0, 2]].all()


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
