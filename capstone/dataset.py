"""One call from files to everything training and search need.

`load_dataset` finds the data (`capstone.data.paths.locate_data`), generates the embedded demo if
that is what is used and it is absent, reads captions and descriptors into a `CocoData`
(`capstone.data.coco`, from `capstone.data.coco_files`), loads GloVe (`capstone.data.glove`),
computes IDF and embeds every caption (`capstone.embeddings.text`).

With real data (shown, not run as a test)::

    ds = load_dataset()
    ds.data.n_images, ds.caption_embeddings.shape
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from capstone.common.memory import release_freed_memory
from capstone.data.coco import CocoData
from capstone.data.glove import WordVectors, load_glove
from capstone.data.paths import DataFiles, demo_files, locate_data
from capstone.embeddings.text import TextEmbedder
from capstone.text.idf import IDF

__all__ = ["DEMO_IMAGES", "Dataset", "DemoSizeMismatch", "load_dataset", "run_differences"]

#: Size of the embedded demo dataset that `load_dataset` generates when none exists.
DEMO_IMAGES = 20_000


class DemoSizeMismatch(ValueError):
    """A demo of one size was asked for while the data home holds one of another size."""


def run_differences(
    info: Mapping, data_fingerprint: str, glove: str | None
) -> dict[str, tuple[str, str]]:
    """What differs between the data and word vectors a model records and those in use.

    The one compatibility rule of a trained model with a dataset: a run used on a dataset
    (`capstone.runs.Run.check`) and a checkpoint resumed
    (`capstone.training.checkpoint.load_checkpoint`) both ask it. The data must have the
    fingerprint the model records (`CocoData.fingerprint`), the word vectors the source it
    records (`WordVectors.source`); what the model does not record (saved by hand, or by an
    older capstone) or what is unknown now is not held against it.

    Parameters
    ----------
    info : Mapping
        What the model records (`Dataset.info`): ``data_fingerprint`` and ``glove``.
    data_fingerprint : str
        The fingerprint of the data in use.
    glove : str or None
        The source of the word vectors in use.

    Returns
    -------
    dict
        ``{key: (recorded, in use)}`` for ``"data_fingerprint"`` and ``"glove"`` when they
        differ; empty when the model fits.

    Examples
    --------
    >>> run_differences({"data_fingerprint": "a1", "glove": "g.txt"}, "b2", "g.txt")
    {'data_fingerprint': ('a1', 'b2')}
    >>> run_differences({}, "b2", "g.txt")  # a model that records neither
    {}
    """
    in_use = {"data_fingerprint": data_fingerprint, "glove": glove}
    return {
        key: (info[key], now)
        for key, now in in_use.items()
        if info.get(key) and now and info[key] != now
    }


@dataclass
class Dataset:
    """Data, word vectors and caption embeddings of one dataset.

    Attributes
    ----------
    files : DataFiles
        Where the data came from.
    data : CocoData
        Captions, images and descriptors.
    glove : WordVectors
    text : TextEmbedder
        IDF table over the captions plus GloVe: embeds captions and queries.
    caption_embeddings : numpy.ndarray, shape (n_captions, d), or None
        float32 unit rows, aligned with ``data.captions``; None when loaded with
        ``embed_captions=False`` (searching needs none: only training and evaluation do).
    """

    files: DataFiles
    data: CocoData
    glove: WordVectors
    text: TextEmbedder
    caption_embeddings: np.ndarray | None

    def info(self) -> dict:
        """Facts that saved models record, to tell later which data and vectors they fit."""
        return {
            "glove": self.glove.source,
            "data_fingerprint": self.data.fingerprint,
            "data_source": self.files.source,
            "data_folder": str(self.files.captions.parent),
        }

    def describe(self) -> str:
        """One human line about the dataset."""
        demo = " (embedded demo: generated captions and descriptors)" if self.files.is_demo else ""
        if self.files.looked_in is not None:
            demo += f" (no course files in {self.files.looked_in})"
        dropped = (
            f", dropped {self.data.n_dropped_images} images without descriptors "
            f"and their {self.data.n_dropped_captions} captions"
            if self.data.n_dropped_images
            else ""
        )
        width = self.data.descriptors.shape[1]
        # ResNet-18's pooled features are 512 wide: another width is another network's, or a bug
        unusual = "" if width == 512 else ", not ResNet-18's 512"
        return (
            f"data: {self.files.captions.parent} [{self.files.source}]{demo}: "
            f"{self.data.n_images:,} images ({width}-d descriptors{unusual}), "
            f"{self.data.n_captions:,} captions{dropped}; "
            f"GloVe: {self.glove.source} ({len(self.glove):,} words, d={self.glove.dim}); "
            f"IDF vocabulary {len(self.text.idf):,} words"
        )


def load_dataset(
    data_dir: str | os.PathLike | None = None,
    *,
    glove: str | os.PathLike | None = None,
    demo: bool = False,
    demo_images: int | None = None,
    verbose: bool = False,
    embed_captions: bool = True,
) -> Dataset:
    """Locate, load and embed a dataset.

    Parameters
    ----------
    data_dir : path-like, optional
        Folder with the course files; by default the search order of `capstone.data.paths`.
    glove : path-like, optional
        A word2vec text GloVe file. By default the data folder's ``glove.6B.200d.txt.w2v``
        when present, else the embedded GloVe 6B 50-d.
    demo : bool
        Use the embedded demo dataset, whatever else is available.
    demo_images : int, optional
        Size of the demo dataset, if the demo is used: generated at that size when absent
        (`capstone.data.minicoco.check_n_images` bounds it); a demo of another size already in
        the data home is an error (`DemoSizeMismatch`), since its runs depend on it. By default
        the demo present, or `DEMO_IMAGES` images when there is none.
    verbose : bool
        Print what is being loaded (to stderr).
    embed_captions : bool
        Embed every caption (for training and evaluation). A search server does not need
        them: False saves n_captions x d floats (331 MB at COCO scale, d = 200).

    Raises
    ------
    DemoSizeMismatch
        If ``demo_images`` differs from the size of the demo present (nothing is changed).
    ValueError, FileNotFoundError
        For bad data or arguments, naming the file or argument.
    """
    if demo and data_dir is not None:
        raise ValueError("pass either `data_dir` or `demo=True`, not both")
    files = demo_files() if demo else locate_data(data_dir)
    absent = files.is_demo and not (files.captions.is_file() and files.features.is_file())
    if files.is_demo and (demo_images is not None or absent):
        from capstone.data import minicoco  # half a second to import: only when it is needed

        if demo_images is not None:
            demo_images = minicoco.check_n_images(demo_images)  # before anything is written
        if absent:
            size = demo_images or DEMO_IMAGES
            if verbose:
                print(
                    f"generating the demo dataset ({size:,} images) in {files.captions.parent}",
                    file=sys.stderr,
                )
            minicoco.generate(files.captions.parent, size, overwrite=True)
    data = CocoData.load(files.captions, files.features)
    present = data.n_images + data.n_dropped_images
    if files.is_demo and demo_images is not None and demo_images != present:
        raise DemoSizeMismatch(
            f"the demo in {files.captions.parent} has {present:,} images already, not "
            f"{demo_images:,} (its runs depend on it); remove that folder, or set CAPSTONE_HOME "
            f"to another folder, to generate {demo_images:,}"
        )
    words = load_glove(glove if glove is not None else files.glove)
    if embed_captions:
        text, caption_embeddings = TextEmbedder.fit(data.captions, words)
    else:
        text, caption_embeddings = TextEmbedder(IDF.fit(data.captions), words), None
    release_freed_memory()  # tokenizing every caption freed ~80 MB (COCO) the heap would keep
    dataset = Dataset(files, data, words, text, caption_embeddings)
    if verbose:
        print(dataset.describe(), file=sys.stderr)
    return dataset
