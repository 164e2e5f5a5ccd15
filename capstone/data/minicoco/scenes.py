"""The model of an image: its latent scene, and the fixed map from scenes to descriptors.

Each image is a latent scene: a scene type s (one of `SCENES`), 1-3 objects from COCO's 80
`CATEGORIES`, drawn with weights that depend on the scene (surfboards at the beach, ovens in
kitchens, people almost everywhere), each with a count level k in {1, 2, 3, several}
(`COUNT_LABELS`) and possibly a colour, plus 0-2 distractor objects. `draw_scenes` draws them
(`Scenes`); the captions (`capstone.data.minicoco.captions`) name the objects, never the
distractors.

Descriptor (shape (512,), `DESCRIPTOR_DIM`): a fixed random nonlinear map of the scene, the
same for every dataset since it depends only on an internal seed. With random codes S
(scenes), C (categories), K (counts) and P (colours) in R^L, independent of any word vectors,

    z = 0.8 S[s] + sum_j w_j (g[k_j] C[c_j] + K[k_j] + P[colour_j]) + eps,  eps ~ N(0, s^2 I_L)
    x = gain * relu(tanh(z A + a) B + b)

where j runs over the objects (salience weights w = 1, 0.8, 0.65) and distractors (w = 0.5).
A model must learn this map (`scene_descriptors`): it is not a linear image of GloVe, but a
linear map from x back to the caption space recovers much of z.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from capstone.data.minicoco.words import (
    CATEGORIES,
    COLOURS,
    MANY,
    PALETTES,
    SCENE_TABLE,
    SINGLE,
)

__all__ = [
    "COUNT_LABELS",
    "DESCRIPTOR_DIM",
    "SCENES",
    "Scenes",
    "draw_scenes",
    "scene_descriptors",
]

DESCRIPTOR_DIM = 512
SCENES = tuple(SCENE_TABLE)
COUNT_LABELS = (1, 2, 3, "several")  # the count levels 0-3, as the scenes file writes them

_OFF_SCENE_WEIGHT = 0.01  # of a category a scene does not list
# How often each count level (1, 2, 3, several) is drawn, by kind of category.
_COUNT_P = {"usual": (0.62, 0.18, 0.08, 0.12), "many": (0.3, 0.2, 0.12, 0.38),
            "single": (0.93, 0.05, 0.01, 0.01)}  # fmt: skip

_N_OBJECTS_P = (0.35, 0.4, 0.25)  # 1, 2 or 3 captioned objects
_N_DISTRACTORS_P = (0.45, 0.35, 0.2)  # 0, 1 or 2 uncaptioned objects
_COLOUR_P = 0.5  # chance that an object of a category with a palette has a colour
# Object slots: 3 captioned objects, most salient first, then 2 distractors.
_SLOT_WEIGHTS = (1.0, 0.8, 0.65, 0.5, 0.5)

_MAP_SEED = 20140501  # fixed: the descriptor map must be the same for every dataset
_LATENT_DIM, _HIDDEN_DIM = 128, 256
_SCENE_WEIGHT = 0.8
_COUNT_GAIN = (1.0, 1.3, 1.5, 1.7)  # more of an object fills more of the picture
_COUNT_CODE_SCALE, _COLOUR_CODE_SCALE = 0.3, 0.4
_LATENT_NOISE = 0.5  # norm of the latent noise, against unit-norm codes


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
class Scenes:
    """The latent scenes of N images; object slots 0-2 are captioned, 3-4 are distractors.

    Attributes
    ----------
    scene : (N,) int scene index into `SCENES`
    category, count, colour : (N, 5) int category index into `CATEGORIES`, count level 0-3
        (`COUNT_LABELS`: 1, 2, 3, several), colour index into `COLOURS` or -1 for none
    present : (N, 5) bool whether the slot holds an object
    """

    scene: np.ndarray
    category: np.ndarray
    count: np.ndarray
    colour: np.ndarray
    present: np.ndarray


def draw_scenes(rng: np.random.Generator, n: int) -> Scenes:
    """The latent scenes of ``n`` images, drawn from ``rng``.

    The scene type by its frequency; then 1-3 objects (35%, 40%, 25%) and 0-2 distractors
    (45%, 35%, 20%), distinct categories drawn by the scene's weights, most salient first;
    each with a count level (its probabilities depend on whether the category is usually
    seen in numbers, alone, or neither) and, for a category with a palette, a colour half of
    the time.

    Parameters
    ----------
    rng : numpy.random.Generator
        The dataset's generator; the draws from it are part of the generated data.
    n : int
        Number of images.

    Returns
    -------
    Scenes
        Arrays of shape (n,) and (n, 5).
    """
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
    return Scenes(scene, category, count, colour, present)


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


def scene_descriptors(scenes: Scenes, rng: np.random.Generator) -> np.ndarray:
    """The descriptors of N scenes: the fixed map (module docstring), with latent noise.

    Parameters
    ----------
    scenes : Scenes
        N latent scenes.
    rng : numpy.random.Generator
        Source of the latent noise eps.

    Returns
    -------
    numpy.ndarray
        (N, 512) float32, non-negative.
    """
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
