"""mini-COCO: the embedded demo dataset, generated in the formats of the course files.

`generator` writes the files (its docstring describes them and the model of an image);
`words` holds the vocabulary, read from ``words.json``. In the package, only
`capstone.dataset` imports this package, and only when the demo has to be generated or a
size is asked for.
"""

from capstone.data.minicoco import generator
from capstone.data.minicoco.generator import *  # noqa: F403  the names of generator.__all__

__all__ = generator.__all__
