"""The demo's word tables, read from ``words.json`` (shipped as package data).

Everything an "annotator" of the generated images may say, with no code in it: edit the JSON
to change the captions (the same seed then gives other files). Fields, as loaded here:

- ``CATEGORIES``: COCO's 80 object categories, in COCO's order.
- ``NOUNS[category]``: what annotators call it (singular; plurals are derived). A repeated word
  is a more common choice. ``SCENE_NOUNS[scene][category]``: what they call it in one scene
  ("a skier", "a tennis ball").
- ``ACTS[category]``: what it is doing. ``PERSON_VERBS[category]``: what a person does with it;
  ``ANY_PERSON_VERBS`` for every category some of the time.
- ``COLOURS``; ``COLOUR_SPELLINGS`` ("gray" or "grey"); ``PALETTES[name]``: (its colours, the
  categories that take them); other categories have no colour. ``GARMENTS``: how a person
  wears a colour.
- ``MANY`` / ``SINGLE``: categories usually seen in numbers / alone (the count levels'
  probabilities are in `scenes`). ``DETERMINERS``: one, two, three, several, and
  ``COLLECTIVE[category]`` ("a herd of") for several; "a" becomes "an" before a vowel.
- ``SCENE_TABLE[scene]``: (how often, where phrases, "a <scene> with ..." nouns, {category:
  weight}); categories not listed get a small weight, so anything can turn up anywhere, rarely.
- ``IRREGULAR_PLURALS``; ``PLURAL_ONLY`` (one of them is "a pair of" them).
- ``TEMPLATES[(kind, scene said)]``: caption templates. {a}, {b}, {c}: noun phrases, {act}:
  what {a} is doing, {v}: what person {a} does with {b}, {w}: where, {n}: "a kitchen".

Lists become tuples, so the tables are read-only like the literals they replace.

Examples
--------
>>> CATEGORIES[:3], len(CATEGORIES)
(('person', 'bicycle', 'car'), 80)
>>> SCENE_NOUNS["tennis court"]["sports ball"]
('tennis ball',)
"""

from __future__ import annotations

import json
from importlib.resources import files

__all__ = [
    "ACTS",
    "ANY_PERSON_VERBS",
    "CATEGORIES",
    "COLLECTIVE",
    "COLOURS",
    "COLOUR_SPELLINGS",
    "DETERMINERS",
    "GARMENTS",
    "IRREGULAR_PLURALS",
    "MANY",
    "NOUNS",
    "PALETTES",
    "PERSON_VERBS",
    "PLURAL_ONLY",
    "SCENE_NOUNS",
    "SCENE_TABLE",
    "SINGLE",
    "TEMPLATES",
]


def _frozen(value):
    """JSON lists as tuples, recursively (dicts stay dicts, in file order)."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


_WORDS = _frozen(json.loads(files(__package__).joinpath("words.json").read_text("utf-8")))

CATEGORIES: tuple[str, ...] = _WORDS["categories"]
NOUNS: dict[str, tuple[str, ...]] = _WORDS["nouns"]
SCENE_NOUNS: dict[str, dict[str, tuple[str, ...]]] = _WORDS["scene_nouns"]
ACTS: dict[str, tuple[str, ...]] = _WORDS["acts"]
PERSON_VERBS: dict[str, tuple[str, ...]] = _WORDS["person_verbs"]
ANY_PERSON_VERBS: tuple[str, ...] = _WORDS["any_person_verbs"]
COLOURS: tuple[str, ...] = _WORDS["colours"]
COLOUR_SPELLINGS: dict[str, tuple[str, ...]] = _WORDS["colour_spellings"]
PALETTES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    name: (p["colours"], p["categories"]) for name, p in _WORDS["palettes"].items()
}
GARMENTS: tuple[str, ...] = _WORDS["garments"]
MANY: tuple[str, ...] = _WORDS["count_kinds"]["many"]
SINGLE: tuple[str, ...] = _WORDS["count_kinds"]["single"]
_DET = _WORDS["determiners"]
DETERMINERS: tuple[tuple[str, ...], ...] = (
    _DET["one"],
    _DET["two"],
    _DET["three"],
    _DET["several"],
)
COLLECTIVE: dict[str, tuple[str, ...]] = _DET["collective"]
SCENE_TABLE: dict[str, tuple] = {
    name: (s["weight"], s["where"], s["places"], s["categories"])
    for name, s in _WORDS["scenes"].items()
}
IRREGULAR_PLURALS: dict[str, str] = _WORDS["irregular_plurals"]
PLURAL_ONLY: tuple[str, ...] = _WORDS["plural_only"]
TEMPLATES: dict[tuple[str, bool], tuple[str, ...]] = {
    (kind, said == "with scene"): templates
    for kind, by_said in _WORDS["templates"].items()
    for said, templates in by_said.items()
}
