"""Where data lives: the course files, the embedded demo, caches and saved runs.

Course data is looked for in this order (`locate_data`):

1. an explicit folder: the ``data_dir`` argument (``--data DIR`` on the command line);
2. the folder named by the environment variable ``CAPSTONE_DATA``;
3. the cache of the course's ``cogworks-data`` package, ``~/.cache/cog_data`` (holding
   either course file there means it must hold both: a partial download is an error);
4. the embedded demo dataset (mini-COCO), generated into ``<data home>/minicoco`` on first use.

The *data home* holds everything `capstone` writes: the demo dataset, caches and training runs.
It is ``$CAPSTONE_HOME`` if set, else the ``data/`` folder of a source checkout, else
``~/.cache/capstone``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CAPTIONS_FILE",
    "FEATURES_FILE",
    "GLOVE_FILE",
    "DataFiles",
    "cache_dir",
    "data_home",
    "demo_dir",
    "demo_files",
    "locate_data",
    "runs_dir",
]

CAPTIONS_FILE = "captions_train2014.json"
FEATURES_FILE = "resnet18_features.pkl"
GLOVE_FILE = "glove.6B.200d.txt.w2v"
COGWORKS_CACHE = Path("~/.cache/cog_data")

_HOW_TO_GET = (
    "The course files are fetched by the course's cogworks-data package (online): "
    "pip install cogworks-data, then in Python: from cogworks_data.language import get_data_path; "
    f"get_data_path('{CAPTIONS_FILE}'), get_data_path('{FEATURES_FILE}') and "
    f"get_data_path('{GLOVE_FILE}'). Without them, run `python -m capstone demo` to use the "
    "embedded demo dataset."
)


def data_home() -> Path:
    """The folder where `capstone` keeps the demo dataset, caches and runs."""
    if os.environ.get("CAPSTONE_HOME"):
        return Path(os.environ["CAPSTONE_HOME"]).expanduser()
    # capstone/data/paths.py -> the checkout's own data/ folder, beside the package
    checkout_data = Path(__file__).resolve().parents[2] / "data"
    if (checkout_data / "README.md").is_file():
        return checkout_data
    return Path("~/.cache/capstone").expanduser()


def cache_dir() -> Path:
    """Caches that can always be rebuilt (GloVe in binary form, downloaded images)."""
    return data_home() / "cache"


def runs_dir() -> Path:
    """Where training runs are saved, one folder each."""
    return data_home() / "runs"


def demo_dir() -> Path:
    """Where the embedded demo dataset (mini-COCO) is generated."""
    return data_home() / "minicoco"


@dataclass(frozen=True)
class DataFiles:
    """The files of one dataset.

    Attributes
    ----------
    captions : Path
        ``captions_train2014.json`` (or a file in its format).
    features : Path
        ``resnet18_features.pkl`` (or a file in its format).
    glove : Path | None
        The word2vec text GloVe file; None means the embedded GloVe 6B 50-d.
    source : str
        How the folder was found: "argument", "CAPSTONE_DATA", "cogworks-data" or "demo".
    """

    captions: Path
    features: Path
    glove: Path | None
    source: str

    @property
    def is_demo(self) -> bool:
        return self.source == "demo"


def _files_in(folder: Path, source: str) -> DataFiles:
    missing = [name for name in (CAPTIONS_FILE, FEATURES_FILE) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(missing)} not found in {folder} (the data folder given by {source}). "
            + _HOW_TO_GET
        )
    glove = folder / GLOVE_FILE
    return DataFiles(
        folder / CAPTIONS_FILE, folder / FEATURES_FILE, glove if glove.is_file() else None, source
    )


def locate_data(data_dir: str | os.PathLike | None = None) -> DataFiles:
    """Find the dataset to use, in the order given in this module's docstring.

    Parameters
    ----------
    data_dir : path-like, optional
        An explicit folder holding ``captions_train2014.json`` and ``resnet18_features.pkl``
        (and optionally ``glove.6B.200d.txt.w2v``).

    Returns
    -------
    DataFiles
        For the demo, the files may not exist yet: `capstone.data.minicoco.generate` writes them
        (``python -m capstone demo`` does so when they are absent).

    Raises
    ------
    FileNotFoundError
        If an explicitly named folder (argument or ``CAPSTONE_DATA``) lacks a file; the message
        names the file, the folder, and how to get the course files.
    """
    if data_dir is not None:
        return _files_in(Path(data_dir).expanduser(), "argument")
    if os.environ.get("CAPSTONE_DATA"):
        return _files_in(Path(os.environ["CAPSTONE_DATA"]).expanduser(), "CAPSTONE_DATA")
    cogworks = COGWORKS_CACHE.expanduser()
    if any((cogworks / name).is_file() for name in (CAPTIONS_FILE, FEATURES_FILE)):
        # some course files but not all: a half-finished download, not a wish for the demo
        return _files_in(cogworks, "cogworks-data")
    return demo_files()


def demo_files() -> DataFiles:
    """The files of the embedded demo dataset (they may not have been generated yet)."""
    demo = demo_dir()
    return DataFiles(demo / CAPTIONS_FILE, demo / FEATURES_FILE, None, "demo")
