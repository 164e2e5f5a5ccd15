"""Tests for `capstone.data.minicoco.captions`: what the captions name, and how."""

import re

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from minicoco_support import mentions

from capstone.data import minicoco
from capstone.text.tokens import tokenize


def test_every_caption_names_one_of_its_objects(generated):
    _, captions, _, scenes = generated
    objects = {r["image_id"]: [o["category"] for o in r["objects"]] for r in scenes["images"]}
    for a in captions["annotations"]:
        assert any(mentions(a["caption"], c) for c in objects[a["image_id"]]), a


def test_captions_are_varied_english(generated):
    _, captions, _, _ = generated
    texts = [a["caption"] for a in captions["annotations"]]
    assert len(set(texts)) > 0.9 * len(texts)
    assert any(t.isupper() for t in texts) and any(t.endswith(".") for t in texts)
    assert any(t[:1].islower() for t in texts) and any(re.search(r"\d", t) for t in texts)
    vocabulary = {w for t in texts for w in tokenize(t)}
    assert len(vocabulary) > 400


def test_captions_do_not_name_the_distractors(generated):
    # The distractors are in the descriptors (test_scenes.py), not in the captions.
    _, captions, _, scenes = generated
    texts = {}
    for a in captions["annotations"]:
        texts.setdefault(a["image_id"], []).append(a["caption"])
    unnamed = [
        (d["category"], r["image_id"])
        for r in scenes["images"]
        for d in r["distractors"]
        if d["category"] not in {o["category"] for o in r["objects"]}
    ]
    mentioned = sum(any(mentions(t, c) for t in texts[i]) for c, i in unnamed)
    assert mentioned < 0.1 * len(unnamed)  # only by accident (3% at seed 3: "a man" ...)


@settings(deadline=None, max_examples=80)
@given(category=st.sampled_from(minicoco.CATEGORIES))
def test_mention_forms_are_lowercase_words_with_plurals(category):
    forms = minicoco.mention_forms(category)
    assert forms and all(f == f.lower() and tokenize(f) for f in forms)
    assert len(forms) >= 2  # a singular and a plural at least


def test_mention_forms_unknown_category():
    with pytest.raises(ValueError, match="unknown category 'unicorn'"):
        minicoco.mention_forms("unicorn")
