"""mini-COCO: the embedded demo dataset, generated in exactly the formats of the course files.

No photo, COCO download or pretrained image network is available offline, so the demo's data
are *generated* by a seeded generator. `generate` writes into a folder:

- ``captions_train2014.json`` (`CAPTIONS_FILE`), in the format of COCO's captions file:
  ``{"info", "images", "licenses", "annotations"}``; each image ``{license, file_name,
  coco_url, height, width, date_captured, flickr_url, id}``, each annotation ``{image_id, id,
  caption}``, at least 5 captions per image. URLs point at the host ``minicoco.invalid``
  (the ``.invalid`` domain never resolves): a generated image has no photo.
- ``resnet18_features.pkl`` (`FEATURES_FILE`): a pickled dict, int image id -> float32 array of
  shape (1, 512), non-negative. As in the real file, about 0.2% of the images have none.
- ``minicoco_scenes.json`` (`SCENES_FILE`): the latent truth behind each image::

      {"description": str, "seed": int, "images": [
          {"image_id": int, "scene": str, "has_descriptor": bool,
           "objects": [{"category": str, "count": 1 | 2 | 3 | "several", "colour": str | null}],
           "distractors": [same as objects]}, ...]}

  ``objects`` are what the captions talk about, most salient first; ``distractors`` are in the
  "picture" (the descriptor) but never in a caption.

The model of an image
---------------------
Each image is a latent scene: a scene type s (one of `SCENES`), 1-3 objects from COCO's 80
`CATEGORIES`, drawn with weights that depend on the scene (surfboards at the beach, ovens in
kitchens, people almost everywhere), each with a count level k in {1, 2, 3, several} and
possibly a colour, plus 0-2 distractor objects.

Descriptor (shape (512,)): a fixed random nonlinear map of the scene, the same for every
dataset since it depends only on an internal seed. With random codes S (scenes), C
(categories), K (counts) and P (colours) in R^L, independent of any word vectors,

    z = 0.8 S[s] + sum_j w_j (g[k_j] C[c_j] + K[k_j] + P[colour_j]) + eps,  eps ~ N(0, s^2 I_L)
    x = gain * relu(tanh(z A + a) B + b)

where j runs over the objects (salience weights w = 1, 0.8, 0.65) and distractors (w = 0.5).
A model must learn this map: it is not a linear image of GloVe, but a linear map from x back to
the caption space recovers much of z.

Captions: COCO-like English, written from the scene by varied "annotators": synonyms, counts
in words, plural forms, scene phrases, actions, templates, capitalization and punctuation. Every
caption names at least one of its image's objects (see `mention_forms`); captions may omit the
other objects or the scene. Every word comes from the tables in ``words.json`` (see `words`).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from capstone.common.archive import atomic_write
from capstone.common.checks import count
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
    MANY,
    NOUNS,
    PALETTES,
    PERSON_VERBS,
    PLURAL_ONLY,
    SCENE_NOUNS,
    SCENE_TABLE,
    SINGLE,
    TEMPLATES,
)
from capstone.data.paths import CAPTIONS_FILE, FEATURES_FILE

__all__ = [
    "CAPTIONS_FILE",
    "CATEGORIES",
    "COCO_SCALE",
    "COLOURS",
    "DESCRIPTOR_DIM",
    "FEATURES_FILE",
    "MAX_CAPTIONS",
    "MAX_IMAGES",
    "SCENES",
    "SCENES_FILE",
    "check_n_images",
    "generate",
    "mention_forms",
]

SCENES_FILE = "minicoco_scenes.json"
COCO_SCALE = (82_783, 414_113)  # images, captions in the real captions_train2014.json
# The largest dataset generated: peak memory is ~10 KB per image (0.8 GB at COCO's size,
# measured), so about 2 GB here; a larger count is refused before anything is allocated.
MAX_IMAGES, MAX_CAPTIONS = 200_000, 1_000_000
_MEMORY_WHY = " (the generator needs about 10 KB of memory per image; COCO has 82,783)"
DESCRIPTOR_DIM = 512

# ---------------------------------------------------------------------------------------------
# The latent scene model and the descriptor map
# ---------------------------------------------------------------------------------------------

SCENES = tuple(SCENE_TABLE)
_OFF_SCENE_WEIGHT = 0.01  # of a category a scene does not list
# How often each count level (1, 2, 3, several) is drawn, by kind of category.
_COUNT_P = {"usual": (0.62, 0.18, 0.08, 0.12), "many": (0.3, 0.2, 0.12, 0.38),
            "single": (0.93, 0.05, 0.01, 0.01)}  # fmt: skip

_N_OBJECTS_P = (0.35, 0.4, 0.25)  # 1, 2 or 3 captioned objects
_N_DISTRACTORS_P = (0.45, 0.35, 0.2)  # 0, 1 or 2 uncaptioned objects
_COLOUR_P = 0.5  # chance that an object of a category with a palette has a colour
# Object slots: 3 captioned objects, most salient first, then 2 distractors.
_SLOT_WEIGHTS = (1.0, 0.8, 0.65, 0.5, 0.5)
_MENTION_P = (0.92, 0.6, 0.45)  # chance that a caption names each captioned object

_MAP_SEED = 20140501  # fixed: the descriptor map must be the same for every dataset
_LATENT_DIM, _HIDDEN_DIM = 128, 256
_SCENE_WEIGHT = 0.8
_COUNT_GAIN = (1.0, 1.3, 1.5, 1.7)  # more of an object fills more of the picture
_COUNT_CODE_SCALE, _COLOUR_CODE_SCALE = 0.3, 0.4
_LATENT_NOISE = 0.5  # norm of the latent noise, against unit-norm codes

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
_COUNT_LABELS = (1, 2, 3, "several")


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


@cache
def _scene_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sampling tables, built once.

    Returns
    -------
    scene_p : (n_scenes,) probability of each scene
    weights : (n_scenes, 80) relative weight of each category in each scene
    count_cdf : (80, 3) cumulative probabilities of the count levels 1, 2, 3 (then several)
    palette : (80, P) int colour indices of each category's palette, padded with -1
    palette_size : (80,) number of colours in each palette (0: the category has no colour)
    """
    scene_p = np.array([SCENE_TABLE[s][0] for s in SCENES])
    weights = np.full((len(SCENES), len(CATEGORIES)), _OFF_SCENE_WEIGHT)
    for i, s in enumerate(SCENES):
        for c, w in SCENE_TABLE[s][3].items():
            weights[i, CATEGORIES.index(c)] = w
    kinds = ["many" if c in MANY else "single" if c in SINGLE else "usual" for c in CATEGORIES]
    count_cdf = np.cumsum([_COUNT_P[k] for k in kinds], axis=1)[:, :3]
    widest = max(len(colours) for colours, _ in PALETTES.values())
    palette = np.full((len(CATEGORIES), widest), -1)
    palette_size = np.zeros(len(CATEGORIES), dtype=np.int64)
    for colours, categories in PALETTES.values():
        for c in categories:
            palette[CATEGORIES.index(c), : len(colours)] = [COLOURS.index(x) for x in colours]
            palette_size[CATEGORIES.index(c)] = len(colours)
    return scene_p / scene_p.sum(), weights, count_cdf, palette, palette_size


@dataclass(frozen=True)
class _Scenes:
    """The latent scenes of N images; object slots 0-2 are captioned, 3-4 are distractors.

    Attributes
    ----------
    scene : (N,) int scene index into `SCENES`
    category, count, colour : (N, 5) int category index, count level 0-3 (1, 2, 3, several),
        colour index into `COLOURS` or -1 for none
    present : (N, 5) bool whether the slot holds an object
    """

    scene: np.ndarray
    category: np.ndarray
    count: np.ndarray
    colour: np.ndarray
    present: np.ndarray


def _draw_scenes(rng: np.random.Generator, n: int) -> _Scenes:
    scene_p, weights, count_cdf, palette, palette_size = _scene_tables()
    scene = rng.choice(len(SCENES), size=n, p=scene_p)
    n_objects = rng.choice(3, size=n, p=_N_OBJECTS_P) + 1
    n_distractors = rng.choice(3, size=n, p=_N_DISTRACTORS_P)
    # Weighted sampling without replacement, all images at once: the categories with the
    # smallest E / w (E ~ Exp(1)) are a weighted draw in order (exponential race).
    race = rng.standard_exponential((n, len(CATEGORIES))) / weights[scene]
    first5 = np.argpartition(race, 4, axis=1)[:, :5]
    ranked = np.take_along_axis(first5, np.argsort(np.take_along_axis(race, first5, 1), 1), 1)
    distractors = np.take_along_axis(ranked, n_objects[:, None] + np.arange(2), axis=1)
    category = np.concatenate([ranked[:, :3], distractors], axis=1)
    present = np.concatenate(
        [np.arange(3) < n_objects[:, None], np.arange(2) < n_distractors[:, None]], axis=1
    )
    count = (rng.random((n, 5))[..., None] > count_cdf[category]).sum(-1)
    has_colour = rng.random((n, 5)) < _COLOUR_P
    pick = (rng.random((n, 5)) * palette_size[category]).astype(np.int64)
    colour = np.where(has_colour, palette[category, pick], -1)  # -1 also for no palette
    return _Scenes(scene, category, count, colour, present)


@dataclass(frozen=True)
class _DescriptorMap:
    """The fixed map from latent scenes to descriptors (see the module docstring)."""

    scene_codes: np.ndarray  # (n_scenes, L)
    category_codes: np.ndarray  # (80, L)
    count_codes: np.ndarray  # (4, L)
    colour_codes: np.ndarray  # (n_colours + 1, L); the last row, zero, is "no colour" (-1)
    A: np.ndarray  # (L, H)
    a: np.ndarray  # (H,)
    B: np.ndarray  # (H, 512)
    b: np.ndarray  # (512,)
    gain: np.ndarray  # (512,)


@cache
def _descriptor_map() -> _DescriptorMap:
    rng = np.random.default_rng(_MAP_SEED)
    L, H = _LATENT_DIM, _HIDDEN_DIM

    def codes(k: int, scale: float = 1.0) -> np.ndarray:
        # Random directions of norm about `scale`: nearly orthogonal in L dimensions.
        return (rng.standard_normal((k, L)) * scale / np.sqrt(L)).astype(np.float32)

    colour_codes = np.concatenate([codes(len(COLOURS), _COLOUR_CODE_SCALE), np.zeros((1, L))])
    return _DescriptorMap(
        scene_codes=codes(len(SCENES)),
        category_codes=codes(len(CATEGORIES)),
        count_codes=codes(4, _COUNT_CODE_SCALE),
        colour_codes=colour_codes.astype(np.float32),
        A=(rng.standard_normal((L, H)) * 0.7).astype(np.float32),
        a=(rng.standard_normal(H) * 0.5).astype(np.float32),
        B=(rng.standard_normal((H, DESCRIPTOR_DIM)) / np.sqrt(H)).astype(np.float32),
        b=(rng.standard_normal(DESCRIPTOR_DIM) * 0.3 + 0.7).astype(np.float32),
        # Uneven channel scales, as in a real network: a few large channels, many small.
        gain=rng.lognormal(0.0, 0.5, DESCRIPTOR_DIM).astype(np.float32),
    )


def _descriptors(scenes: _Scenes, rng: np.random.Generator) -> np.ndarray:
    """(N, 512) float32 non-negative descriptors of the scenes, with latent noise from rng."""
    m = _descriptor_map()
    z = _SCENE_WEIGHT * m.scene_codes[scenes.scene]
    for j, weight in enumerate(_SLOT_WEIGHTS):
        cat, count = scenes.category[:, j], scenes.count[:, j]
        gain = np.asarray(_COUNT_GAIN, dtype=np.float32)[count, None]
        colour = m.colour_codes[scenes.colour[:, j]]
        obj = gain * m.category_codes[cat] + m.count_codes[count] + colour
        z += (weight * scenes.present[:, j, None]).astype(np.float32) * obj
    noise = rng.standard_normal(z.shape, dtype=np.float32) * (_LATENT_NOISE / _LATENT_DIM**0.5)
    hidden = np.tanh((z + noise) @ m.A + m.a)
    return np.maximum(hidden @ m.B + m.b, 0.0) * m.gain


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


def _caption_texts(
    rng: np.random.Generator, scenes: _Scenes, caption_image: np.ndarray
) -> list[str]:
    """The text of each caption; ``caption_image[k]`` is the image index of caption k."""
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


# ---------------------------------------------------------------------------------------------
# The files
# ---------------------------------------------------------------------------------------------

_URL = "http://images.minicoco.invalid/train2014/"
_FLICKR_URL = "http://flickr.minicoco.invalid/train2014/"
_INFO = {
    "description": "mini-COCO: a GENERATED demo dataset in the format of the MS-COCO 2014 "
    "captions file. Captions and descriptors are generated from random latent scenes by "
    "capstone.data.minicoco; there are no photos, and the descriptors are not from a real network.",
    "url": "http://minicoco.invalid",
    "version": "1.0",
    "year": 2014,
    "contributor": "capstone.data.minicoco (generated)",
}
_LICENSES = [
    {
        "url": "http://minicoco.invalid/license",
        "id": 1,
        "name": "Generated demo data, no photograph: free to use",
    }
]
# (width, height, relative frequency): the commonest COCO image sizes.
_IMAGE_SIZES = ((640, 480, 40), (480, 640, 12), (640, 427, 15), (427, 640, 6), (500, 375, 8),
                (375, 500, 3), (612, 612, 4), (640, 426, 5), (640, 360, 4),
                (500, 333, 3))  # fmt: skip
_FIRST_CAPTURE, _CAPTURE_DAYS = np.datetime64("2013-11-14T00:00:00"), 45
_IMAGE_ID_SPACE, _CAPTION_ID_SPACE = 600_000, 1_000_000  # ids are below these, as in COCO


def _distinct_ids(rng: np.random.Generator, k: int, space: int) -> np.ndarray:
    """k distinct positive ints below ``space`` (widened if k is too large for it)."""
    return rng.choice(max(space, 2 * k) - 1, size=k, replace=False) + 1


def _n_without_descriptor(n_images: int) -> int:
    # As in the real files (171 of 82,783 images); at least one once there are 200 images.
    return max(round(n_images * 171 / COCO_SCALE[0]), int(n_images >= 200))


def _image_records(rng: np.random.Generator, image_ids: np.ndarray) -> list[dict]:
    n = len(image_ids)
    sizes = np.array(_IMAGE_SIZES)
    size = sizes[rng.choice(len(sizes), size=n, p=sizes[:, 2] / sizes[:, 2].sum()), :2]
    seconds = rng.integers(0, _CAPTURE_DAYS * 86_400, size=n).astype("timedelta64[s]")
    dates = np.datetime_as_string(_FIRST_CAPTURE + seconds, unit="s").tolist()
    records = []
    for i, (width, height), date in zip(image_ids.tolist(), size.tolist(), dates, strict=True):
        name = f"COCO_train2014_{i:012d}.jpg"
        records.append({
            "license": 1,
            "file_name": name,
            "coco_url": _URL + name,
            "height": height,
            "width": width,
            "date_captured": date.replace("T", " "),
            "flickr_url": _FLICKR_URL + name,
            "id": i,
        })  # fmt: skip
    return records


def _scene_records(
    scenes: _Scenes, image_ids: np.ndarray, has_descriptor: np.ndarray
) -> list[dict]:
    category, count = scenes.category.tolist(), scenes.count.tolist()
    colour, present = scenes.colour.tolist(), scenes.present.tolist()

    def objects(i: int, slots: range) -> list[dict]:
        return [
            {
                "category": CATEGORIES[category[i][j]],
                "count": _COUNT_LABELS[count[i][j]],
                "colour": COLOURS[colour[i][j]] if colour[i][j] >= 0 else None,
            }
            for j in slots
            if present[i][j]
        ]

    return [
        {
            "image_id": image_id,
            "scene": SCENES[scene],
            "objects": objects(i, range(3)),
            "distractors": objects(i, range(3, 5)),
            "has_descriptor": has,
        }
        for i, (image_id, scene, has) in enumerate(
            zip(image_ids.tolist(), scenes.scene.tolist(), has_descriptor.tolist(), strict=True)
        )
    ]


def check_n_images(n_images) -> int:
    """``n_images`` as an int in ``[10, MAX_IMAGES]``: the sizes `generate` makes.

    Checked before anything is allocated (a huge count would fail deep inside NumPy).

    >>> check_n_images(20_000)
    20000
    >>> check_n_images(10**11)
    Traceback (most recent call last):
        ...
    ValueError: `n_images` must be a whole number from 10 to 200,000 (the generator needs about 10 KB of memory per image; COCO has 82,783), got 100,000,000,000
    """  # noqa: E501
    return count("n_images", n_images, least=10, most=MAX_IMAGES, why=_MEMORY_WHY)


def generate(
    out_dir,
    n_images: int = 10_000,
    *,
    n_captions: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Write the mini-COCO files into ``out_dir`` (created if needed).

    Writes `CAPTIONS_FILE`, `FEATURES_FILE` and `SCENES_FILE` (formats in the module
    docstring). Each file is written to a temporary file in ``out_dir`` and then renamed, so an
    interrupted run never leaves half a file. The same seed gives byte-identical files.

    Parameters
    ----------
    out_dir : path-like
        Destination folder.
    n_images : int, optional (default=10_000)
        Number of images, at least 10 and at most `MAX_IMAGES` (200,000; COCO: 82,783, see
        `COCO_SCALE`).
    n_captions : int, optional
        Number of captions, at least (and by default) ``5 * n_images``, at most `MAX_CAPTIONS`
        (1,000,000); each image gets 5, and the extra ones go to random images.
    seed : int, optional (default=0)
        Seed of the dataset (scenes, captions, ids, noise). The map from scenes to descriptors
        is fixed: it is the same for every seed.
    overwrite : bool, optional (default=False)
        Whether existing files may be replaced.

    Returns
    -------
    dict
        ``captions``, ``features``, ``scenes`` (the paths written), ``n_images``,
        ``n_captions``, ``n_without_descriptor`` (images in the captions file that have no
        descriptor, about 0.2% as in the real files) and ``seed``.

    Raises
    ------
    FileExistsError
        If one of the files exists and ``overwrite`` is False (nothing is written).
    ValueError
        For a bad argument; the message names it (`capstone.common.checks.count`).

    Examples
    --------
    With real data (shown, not run as a test)::

        generate(tmp_path, 1_000, seed=1)["n_without_descriptor"]
    2
    """
    n_images = check_n_images(n_images)
    if n_captions is None:
        n_captions = 5 * n_images
    n_captions = count(
        "n_captions", n_captions, least=5 * n_images, most=MAX_CAPTIONS, why=" (COCO has 414,113)"
    )
    seed = count("seed", seed, least=0)
    out_dir = Path(out_dir).expanduser()
    paths = {
        "captions": out_dir / CAPTIONS_FILE,
        "features": out_dir / FEATURES_FILE,
        "scenes": out_dir / SCENES_FILE,
    }
    existing = [p for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} already exists; pass overwrite=True to replace it")

    rng = np.random.default_rng(seed)
    scenes = _draw_scenes(rng, n_images)
    descriptors = _descriptors(scenes, rng)
    image_ids = _distinct_ids(rng, n_images, _IMAGE_ID_SPACE)
    has_descriptor = np.ones(n_images, dtype=bool)
    has_descriptor[rng.choice(n_images, _n_without_descriptor(n_images), replace=False)] = False
    per_image = 5 + np.bincount(rng.integers(0, n_images, n_captions - 5 * n_images),
                                minlength=n_images)  # fmt: skip
    caption_image = rng.permutation(np.repeat(np.arange(n_images), per_image))
    caption_ids = np.sort(_distinct_ids(rng, n_captions, _CAPTION_ID_SPACE))
    texts = _caption_texts(rng, scenes, caption_image)
    captions = {
        "info": _INFO,
        "images": _image_records(rng, image_ids),
        "licenses": _LICENSES,
        "annotations": [
            {"image_id": i, "id": k, "caption": text}
            for i, k, text in zip(
                image_ids[caption_image].tolist(), caption_ids.tolist(), texts, strict=True
            )
        ],
    }
    # Row views: pickle stores each as a (1, 512) array of its own.
    features = {
        i: descriptors[row : row + 1]
        for row, i in enumerate(image_ids.tolist())
        if has_descriptor[row]
    }
    sidecar = {
        "description": "The latent scene behind each image of the generated mini-COCO dataset "
        "(see capstone.data.minicoco): objects are named by captions, distractors are not.",
        "seed": seed,
        "images": _scene_records(scenes, image_ids, has_descriptor),
    }

    def write_json(doc: dict):
        return lambda f: f.write(json.dumps(doc, separators=(",", ":")).encode("utf-8"))

    atomic_write(paths["scenes"], write_json(sidecar), overwrite=overwrite)
    atomic_write(paths["features"], lambda f: pickle.dump(features, f, protocol=4),
                 overwrite=overwrite)  # fmt: skip
    atomic_write(paths["captions"], write_json(captions), overwrite=overwrite)
    return {
        **paths,
        "n_images": n_images,
        "n_captions": n_captions,
        "n_without_descriptor": n_images - len(features),
        "seed": seed,
    }
