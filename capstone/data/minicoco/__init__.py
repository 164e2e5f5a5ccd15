"""mini-COCO: the embedded demo dataset, generated in the formats of the course files.

`generator` writes the files (its docstring describes them); `scenes` draws each image's latent
scene and maps it to a descriptor (the model of an image); `captions` writes the captions from
the scenes; `words` holds the vocabulary, read from ``words.json``. In the package, only
`capstone.dataset` imports this package, and only when the demo has to be generated or a
size is asked for.

The names below are the package's API, each imported from its home module.
"""

from capstone.data.minicoco.captions import mention_forms
from capstone.data.minicoco.generator import (
    COCO_SCALE,
    MAX_CAPTIONS,
    MAX_IMAGES,
    SCENES_FILE,
    check_n_images,
    generate,
)
from capstone.data.minicoco.scenes import DESCRIPTOR_DIM, SCENES
from capstone.data.minicoco.words import CATEGORIES, COLOURS
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
