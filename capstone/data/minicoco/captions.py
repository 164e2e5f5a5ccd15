"""The captions of the generated images: COCO-like English, written from the latent scenes.

Varied "annotators" write each caption from its image's scene (`capstone.data.minicoco.scenes`):
synonyms, counts in words, plural forms, scene phrases, actions, templates, capitalization and
punctuation. Every caption names at least one of its image's objects (see `mention_forms`):
the most salient with probability 0.92, the second 0.6, the third 0.45, and the first when the
draw names none. Captions may omit the other objects or the scene, and never set out to name
a distractor (a word they share may, by accident). Every word comes from the tables in
``words.json`` (see `capstone.data.minicoco.words`).

Each caption's style is decided by a plain loop over pre-drawn uniform bytes (0..255), one per
decision, at fixed positions (`_AT_*`): an event of probability p happens when its byte is
below round(256 p). The order of the positions is part of the generated data.
"""

from __future__ import annotations

import numpy as np

from capstone.data.minicoco.scenes import SCENES, Scenes
from capstone.data.minicoco.words import (
    ACTS,
    ANY_PERSON_VERBS,
    CATEGORIES,
    COLLECTIVE,
    COLOUR_SPELLINGS,
    COLOURS,
    DETERMINERS,
    GARMENTS,
    IRREGULAR_PLURALS,
    NOUNS,
    PERSON_VERBS,
    PLURAL_ONLY,
    SCENE_NOUNS,
    SCENE_TABLE,
    TEMPLATES,
)

__all__ = ["caption_texts", "mention_forms"]

_MENTION_P = (0.92, 0.6, 0.45)  # chance that a caption names each captioned object

# ---------------------------------------------------------------------------------------------
# Caption style: one uniform byte (0..255) per random decision
# ---------------------------------------------------------------------------------------------


def _byte_threshold(probability: float) -> int:
    """The byte (0..255) below which an event of this probability happens."""
    return round(probability * 256)


# How often each decision goes one way: a uniform byte below the threshold.
_P_SHOW_SCENE = _byte_threshold(0.7)
_P_SWAP = _byte_threshold(0.3)
_P_PERSON_KIND = _byte_threshold(0.75)
_P_SCENE_NOUN = _byte_threshold(0.35)
_P_SAY_COLOUR = _byte_threshold(0.55)
_P_CONTRACT = _byte_threshold(0.3)
# cumulative: 10% all lower case, 2% all upper case; 60% ".", 3% " .", otherwise no period
_P_LOWER, _P_UPPER = _byte_threshold(0.1), _byte_threshold(0.12)
_P_PERIOD, _P_SPACED_PERIOD = _byte_threshold(0.6), _byte_threshold(0.63)
_P_DOUBLE_SPACE, _P_TRAILING_SPACE = _byte_threshold(0.03), _byte_threshold(0.04)

# A caption's `draws`: one uniform byte per decision, at these positions (the order is part of
# the generated data: the same seed gives the same files only while it stays).
_AT_PERSON_KIND = 0  # lead with the people ("a man riding a horse")?
_AT_SHOW_SCENE = 1  # a template that names the scene?
_AT_TEMPLATE = 2  # which template
_AT_WHERE = 3  # which phrase for where the scene is
_AT_SCENE_PLACE = 4  # which noun for the scene's place
_AT_SWAP = 5  # name the second object first?
_AT_ACT = 6  # what the first object does
_AT_VERB = 7  # what the person does with the second object
_AT_CASE = 8  # sentence case, all lower or all upper
_AT_FINAL_PERIOD = 9  # ".", " ." or none
_AT_DOUBLE_SPACE = 10  # a stray double space?
_AT_DOUBLE_SPACE_WHERE = 11  # between which words
_AT_TRAILING_SPACE = 12  # a stray space at the end?
_AT_CONTRACT = 13  # "there's" for "there is"?
_AT_NOUN_PHRASES = 14  # then `_NP_BYTES` for each of up to 3 noun phrases:
_NP_SCENE_FORM, _NP_NOUN, _NP_DETERMINER, _NP_SAY_COLOUR, _NP_COLOUR_WORD = range(5)
_NP_BYTES = 5
_N_BYTES = _AT_NOUN_PHRASES + 3 * _NP_BYTES

# ---------------------------------------------------------------------------------------------
# Tables derived from the word lists, indexed by category and scene number for speed
# ---------------------------------------------------------------------------------------------


def _plural(noun: str) -> str:
    """English plural of a noun phrase: its head word is the one before "of", else the last."""
    words = noun.split(" ")
    head = words.index("of") - 1 if "of" in words else len(words) - 1
    word = words[head]
    if word in IRREGULAR_PLURALS:
        word = IRREGULAR_PLURALS[word]
    elif word.endswith(("s", "x", "ch", "sh")):
        word += "es"
    elif word.endswith("y") and word[-2] not in "aeiou":
        word = word[:-1] + "ies"
    else:
        word += "s"
    words[head] = word
    return " ".join(words)


def _forms(nouns: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((noun, _plural(noun)) for noun in nouns)


_PERSON = CATEGORIES.index("person")
_FORMS = tuple(_forms(NOUNS[c]) for c in CATEGORIES)
_SCENE_FORMS = {
    (SCENES.index(s), CATEGORIES.index(c)): _forms(n)
    for s, by_category in SCENE_NOUNS.items()
    for c, n in by_category.items()
}
_ACTS_BY = tuple(ACTS[c] for c in CATEGORIES)
_VERBS_BY = tuple(PERSON_VERBS.get(c, ()) + ANY_PERSON_VERBS for c in CATEGORIES)
_DETERMINERS = tuple((*DETERMINERS[:3], DETERMINERS[3] + COLLECTIVE.get(c, ())) for c in CATEGORIES)
_WHERE = tuple(SCENE_TABLE[s][1] for s in SCENES)
_SCENE_PLACES = tuple(SCENE_TABLE[s][2] for s in SCENES)
_COLOUR_WORDS = tuple(COLOUR_SPELLINGS.get(c, (c,)) for c in COLOURS)


def mention_forms(category: str) -> frozenset[str]:
    """Every word or phrase a caption may use for a category, singular and plural, lower case.

    Examples
    --------
    >>> sorted(mention_forms("dog"))
    ['dog', 'dogs', 'pup', 'puppies', 'puppy', 'pups']
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; see minicoco.CATEGORIES")
    c = CATEGORIES.index(category)
    forms = _FORMS[c] + sum((f for (_, cat), f in _SCENE_FORMS.items() if cat == c), ())
    return frozenset(w.lower() for pair in forms for w in pair)


# ---------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------


def _pick(options: tuple, byte: int):
    return options[byte * len(options) >> 8]


def _noun_phrase(scene: int, category: int, count: int, colour: int, draws: list[int], at: int):
    """A noun phrase for one object ("two white dogs"), from ``draws[at:at + _NP_BYTES]``."""
    in_scene = draws[at + _NP_SCENE_FORM] < _P_SCENE_NOUN  # a form the scene suggests
    forms = _SCENE_FORMS.get((scene, category)) if in_scene else None
    singular, plural = _pick(forms or _FORMS[category], draws[at + _NP_NOUN])
    noun = singular if count == 0 else plural
    determiner = _pick(_DETERMINERS[category][count], draws[at + _NP_DETERMINER])
    if determiner == "a pair of" and " of " in noun:
        determiner = "two"  # not "a pair of pairs of skis"
    elif count == 0 and noun in PLURAL_ONLY:
        determiner = "a pair of"  # not "a skis"
    if colour >= 0 and draws[at + _NP_SAY_COLOUR] < _P_SAY_COLOUR:
        colour_word = _pick(_COLOUR_WORDS[colour], draws[at + _NP_COLOUR_WORD])
        if category == _PERSON:  # people wear their colour
            garment = _pick(GARMENTS, draws[at + _NP_COLOUR_WORD])
            worn = f"a {colour_word} {garment}" if count == 0 else f"{colour_word} {garment}s"
            noun += f" in {worn}"
        else:
            noun = f"{colour_word} {noun}"
    if determiner == "a" and noun[0] in "aeiouAEIOU":
        determiner = "an"
    return f"{determiner} {noun}"


def _caption(scene: int, objects: list[tuple[int, int, int]], draws: list[int]) -> str:
    """One caption naming ``objects`` ((category, count level, colour), most salient first).

    ``draws`` holds `_N_BYTES` uniform random bytes, one per decision (at the `_AT_*` positions),
    so that captions can be written by a plain loop over pre-drawn numbers.
    """
    if len(objects) > 1 and draws[_AT_SWAP] < _P_SWAP:
        objects = [objects[1], objects[0], *objects[2:]]
    kind = ("one", "two", "three")[len(objects) - 1]
    people = [o for o in objects if o[0] == _PERSON]
    if people and len(objects) > 1 and draws[_AT_PERSON_KIND] < _P_PERSON_KIND:
        objects = people + [o for o in objects if o[0] != _PERSON]
        kind = "person" if len(objects) == 2 else "person3"
    phrases = [
        _noun_phrase(scene, *o, draws, _AT_NOUN_PHRASES + i * _NP_BYTES)
        for i, o in enumerate(objects)
    ]
    phrases += ["", ""]
    verb = _pick(_VERBS_BY[objects[1][0]], draws[_AT_VERB]) if kind.startswith("person") else ""
    templates = TEMPLATES[kind, draws[_AT_SHOW_SCENE] < _P_SHOW_SCENE]
    text = _pick(templates, draws[_AT_TEMPLATE]).format(
        a=phrases[0],
        b=phrases[1],
        c=phrases[2],
        act=_pick(_ACTS_BY[objects[0][0]], draws[_AT_ACT]),
        v=verb,
        w=_pick(_WHERE[scene], draws[_AT_WHERE]),
        n=_pick(_SCENE_PLACES[scene], draws[_AT_SCENE_PLACE]),
        be="is" if objects[0][1] == 0 else "are",
    )
    return _styled(text, draws)


def _styled(text: str, draws: list[int]) -> str:
    """The annotator's habits: case, final period, stray spaces, contractions."""
    text = " ".join(text.split()).replace(" ,", ",")
    if text.startswith("there is ") and draws[_AT_CONTRACT] < _P_CONTRACT:
        text = "there's " + text[9:]
    if draws[_AT_CASE] >= _P_UPPER:
        text = text[0].upper() + text[1:]
    elif draws[_AT_CASE] >= _P_LOWER:
        text = text.upper()
    if draws[_AT_FINAL_PERIOD] < _P_PERIOD:
        text += "."
    elif draws[_AT_FINAL_PERIOD] < _P_SPACED_PERIOD:
        text += " ."
    if draws[_AT_DOUBLE_SPACE] < _P_DOUBLE_SPACE:
        words = text.split(" ")
        at = 1 + (draws[_AT_DOUBLE_SPACE_WHERE] * (len(words) - 1) >> 8)
        text = " ".join(words[:at]) + "  " + " ".join(words[at:])
    if draws[_AT_TRAILING_SPACE] < _P_TRAILING_SPACE:
        text += " "
    return text


def caption_texts(rng: np.random.Generator, scenes: Scenes, caption_image: np.ndarray) -> list[str]:
    """The text of each caption, written from its image's scene.

    Parameters
    ----------
    rng : numpy.random.Generator
        The dataset's generator: which objects each caption names, then `_N_BYTES` bytes per
        caption for its style.
    scenes : Scenes
        The latent scenes of the N images.
    caption_image : numpy.ndarray
        (n_captions,) int: ``caption_image[k]`` is the image index (0..N-1) of caption k.

    Returns
    -------
    list[str]
        One text per caption, in the order of ``caption_image``.
    """
    n_captions = len(caption_image)
    n_objects = scenes.present[:, :3].sum(1).tolist()
    image_objects = [
        tuple(zip(cats[:k], counts[:k], colours[:k], strict=True))
        for cats, counts, colours, k in zip(
            scenes.category[:, :3].tolist(),
            scenes.count[:, :3].tolist(),
            scenes.colour[:, :3].tolist(),
            n_objects,
            strict=True,
        )
    ]
    # Which of its image's objects each caption names: at least the most salient one.
    said = (rng.random((n_captions, 3)) < _MENTION_P) & scenes.present[caption_image, :3]
    said[:, 0] |= ~said.any(1)
    said_bits = (said @ np.array([1, 2, 4])).tolist()
    random_bytes = rng.integers(0, 256, size=(n_captions, _N_BYTES), dtype=np.uint8).tolist()
    scene_of = scenes.scene.tolist()
    return [
        _caption(scene_of[i], [o for j, o in enumerate(image_objects[i]) if bits >> j & 1], draws)
        for i, bits, draws in zip(caption_image.tolist(), said_bits, random_bytes, strict=True)
    ]
