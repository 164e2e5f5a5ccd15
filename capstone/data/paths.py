"""Where data lives: the course files, the embedded demo, caches and saved runs.

Course data is looked for in this order (`locate_data`):

1. an explicit folder: the ``data_dir`` argument (``--data DIR`` on the command line);
2. the folder named by the environment variable ``CAPSTONE_DATA``;
3. the cache of the course's ``cogworks-data`` package (`cogworks_cache`: the folder its
   ``get_data_path`` downloads into, which depends on the system; holding either course file
   there means it must hold both: a partial download is an error);
4. the embedded demo dataset (mini-COCO), generated into ``<data home>/minicoco`` on first use;
   `DataFiles.looked_in` then says where the course files were looked for.

The *data home* holds everything `capstone` writes: the demo dataset, caches and training runs.
It is ``$CAPSTONE_HOME`` if set, else the ``data/`` folder of a source checkout, else
``~/.cache/capstone``. A data home, cache or demo folder that is a file is an error naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

__all__ = [
    "CAPTIONS_FILE",
    "FEATURES_FILE",
    "GLOVE_FILE",
    "DataFiles",
    "cache_dir",
    "cogworks_cache",
    "data_home",
    "demo_dir",
    "demo_files",
    "locate_data",
    "runs_dir",
]

CAPTIONS_FILE = "captions_train2014.json"
FEATURES_FILE = "resnet18_features.pkl"
GLOVE_FILE = "glove.6B.200d.txt.w2v"


def cogworks_cache() -> Path:
    """The folder where ``cogworks-data`` keeps the course files on this system.

    cogworks-data 0.2.0 downloads into ``pooch.os_cache("cog_data")``, which is
    ``platformdirs.user_cache_dir("cog_data")`` (default ``appauthor``): ``~/.cache/cog_data``
    on Linux (``$XDG_CACHE_HOME/cog_data`` when that is set), ``~/Library/Caches/cog_data`` on
    macOS, ``%LOCALAPPDATA%\\cog_data\\cog_data\\Cache`` on Windows. platformdirs is asked
    directly: importing cogworks-data would import pooch and set up its downloads on every
    command.
    """
    return Path(platformdirs.user_cache_dir("cog_data"))


#: `cogworks_cache` when this module was imported (what `locate_data` looks in).
COGWORKS_CACHE = cogworks_cache()

_HOW_TO_GET = (
    "The course files are fetched by the course's cogworks-data package (online): "
    "pip install cogworks-data, then in Python: from cogworks_data.language import get_data_path; "
    f"get_data_path('{CAPTIONS_FILE}'), get_data_path('{FEATURES_FILE}') and "
    f"get_data_path('{GLOVE_FILE}'). Without them, run `python -m capstone demo` to use the "
    "embedded demo dataset."
)


def _folder(path: Path, what: str) -> Path:
    """``path``, unless it, or the nearest of its parents that exists, is not a folder: then
    an error naming it (instead of ``[Errno 20] Not a directory`` at the first write)."""
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        problem = "is a file" if existing == path else f"cannot be made: {existing} is a file"
        raise NotADirectoryError(
            f"{what} {path} {problem}, not a folder: move it away, or set CAPSTONE_HOME to a "
            "folder"
        )
    return path


def data_home() -> Path:
    """The folder where `capstone` keeps the demo dataset, caches and runs.

    Raises
    ------
    NotADirectoryError
        If it (or a parent) is a file; the message names it.
    """
    if os.environ.get("CAPSTONE_HOME"):
        home = Path(os.environ["CAPSTONE_HOME"]).expanduser()
        return _folder(home, "the data home ($CAPSTONE_HOME)")
    # capstone/data/paths.py -> the checkout's own data/ folder, beside the package
    checkout_data = Path(__file__).resolve().parents[2] / "data"
    if (checkout_data / "README.md").is_file():
        return checkout_data
    return _folder(Path("~/.cache/capstone").expanduser(), "the data home")


def cache_dir() -> Path:
    """Caches that can always be rebuilt (GloVe in binary form, downloaded images)."""
    return _folder(data_home() / "cache", "the cache folder")


def runs_dir() -> Path:
    """Where training runs are saved, one folder each."""
    return data_home() / "runs"


def demo_dir() -> Path:
    """Where the embedded demo dataset (mini-COCO) is generated."""
    return _folder(data_home() / "minicoco", "the demo folder")


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
    looked_in : Path | None
        For the demo chosen because no course files were found: the cogworks-data folder
        they were looked for in (`cogworks_cache`); None otherwise.
    """

    captions: Path
    features: Path
    glove: Path | None
    source: str
    looked_in: Path | None = field(default=None, compare=False)

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
    return replace(demo_files(), looked_in=cogworks)


def demo_files() -> DataFiles:
    """The files of the embedded demo dataset (they may not have been generated yet)."""
    demo = demo_dir()
    return DataFiles(demo / CAPTIONS_FILE, demo / FEATURES_FILE, None, "demo")
