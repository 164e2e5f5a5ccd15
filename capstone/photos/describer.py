"""Describe your own photos as the course's 512-d ResNet-18 descriptors.

>>> from capstone.photos.describer import PhotoDescriber, find_photos
>>> from capstone.photos.weights import locate_weights
>>> describer = PhotoDescriber(locate_weights())  # doctest: +SKIP
>>> vectors, described, failures = describer.describe_paths(find_photos("photos"))  # doctest: +SKIP

Each photo goes through torchvision's evaluation preprocessing (`capstone.photos.preprocess`)
and the NumPy ResNet-18 (`capstone.photos.resnet`); a trained ``ImageEmbedder`` then maps the
descriptors into caption space like any from the course's feature file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from capstone.common.checks import count
from capstone.common.memory import reuse_freed_memory
from capstone.common.progress import Progress
from capstone.photos.preprocess import PhotoError, PhotoSource, load_photo, to_tensor
from capstone.photos.resnet import DESCRIPTOR_SIZE, ResNet18
from capstone.photos.weight_files import load_state_dict

__all__ = ["PHOTO_SUFFIXES", "PhotoDescriber", "PhotoError", "find_photos"]

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})


def find_photos(
    folder: str | os.PathLike, unlisted: list[tuple[Path, str]] | None = None
) -> list[Path]:
    """Every photo under ``folder``, recursively, sorted.

    A photo is a file whose suffix (in any case) is one of `PHOTO_SUFFIXES`. Symlinked folders
    are followed, but each folder is visited once: a link back up the tree is no loop.

    Parameters
    ----------
    folder : path-like
    unlisted : list, optional
        Each subfolder that could not be listed (no permission, an I/O error) is appended as
        (path, reason): its photos are missing from the answer, not gone.

    Returns
    -------
    list[pathlib.Path]
        Paths under ``folder`` (through the links followed), sorted.

    Raises
    ------
    PhotoError
        If ``folder`` is not a folder, or holds no photo.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        reason = "is not a folder" if folder.exists() else "no such folder"
        raise PhotoError(folder, reason)
    seen: set[tuple[int, int]] = set()
    photos = []
    failed: list[tuple[Path, str]] = []

    def cannot_list(error: OSError) -> None:
        failed.append((Path(error.filename), error.strerror or str(error)))

    for root, dirs, files in os.walk(folder, onerror=cannot_list, followlinks=True):
        info = os.stat(root)
        seen.add((info.st_dev, info.st_ino))
        # prune, in place, every subfolder already visited or about to be (by another link)
        kept = []
        for name in dirs:
            try:
                sub = os.stat(os.path.join(root, name))
            except OSError as e:
                cannot_list(e)
                continue
            if (sub.st_dev, sub.st_ino) not in seen:
                seen.add((sub.st_dev, sub.st_ino))
                kept.append(name)
        dirs[:] = kept
        photos += [Path(root, f) for f in files if Path(f).suffix.lower() in PHOTO_SUFFIXES]
    if failed and failed[0][0] == folder:
        raise PhotoError(folder, f"cannot be listed ({failed[0][1]})")
    if unlisted is not None:
        unlisted.extend(failed)
    if not photos:
        suffixes = ", ".join(sorted(PHOTO_SUFFIXES))
        raise PhotoError(folder, f"no photos in this folder or below (looked for {suffixes})")
    return sorted(photos)


class PhotoDescriber:
    """Turns photo files into (n, 512) float32 ResNet-18 descriptors.

    Parameters
    ----------
    weights : path-like or Mapping[str, numpy.ndarray]
        A ``resnet18-f37072fd.pth`` or ``.safetensors`` file
        (``capstone.photos.weights.locate_weights`` finds or downloads it), or a state dict in
        torchvision's layout.

    Raises
    ------
    ValueError
        If the weights are not ResNet-18's (naming the key), or the file is unreadable
        (``capstone.photos.weight_files.WeightsError``).
    """

    def __init__(self, weights: str | os.PathLike | Mapping[str, np.ndarray]):
        state = weights if isinstance(weights, Mapping) else load_state_dict(weights)
        reuse_freed_memory()  # the network frees and allocates the same large arrays per batch
        self.network = ResNet18.from_state_dict(state)

    def describe(self, source: PhotoSource) -> np.ndarray:
        """The descriptor of one photo (a path, or the file opened in binary), shape (1, 512).

        Raises
        ------
        PhotoError
            If ``source`` is not a readable photo (see ``capstone.photos.preprocess.open_photo``).
        """
        return self.network.describe(load_photo(source)[None])

    def describe_image(self, image: Image.Image) -> np.ndarray:
        """The descriptor of a photo already opened by ``open_photo``, shape (1, 512), float32."""
        return self.network.describe(to_tensor(image)[None])

    def describe_paths(
        self, paths: Iterable[str | os.PathLike], *, batch_size: int = 8, progress: bool = True
    ) -> tuple[np.ndarray, list[Path], list[tuple[Path, str]]]:
        """Describe every readable photo of ``paths``; record each failure and go on.

        Parameters
        ----------
        paths : Iterable[path-like]
        batch_size : int, optional (default=8)
            Photos per network pass (more uses more memory, a little less time per photo).
        progress : bool, optional (default=True)
            Show a progress bar and a summary line on stderr.

        Returns
        -------
        descriptors : numpy.ndarray, shape-(n_ok, 512), float32
            Row i describes ``described[i]``.
        described : list[pathlib.Path]
            The photos described, in the order given.
        failures : list[tuple[pathlib.Path, str]]
            Each photo that could not be read, with the reason in plain words.
        """
        batch_size = count("batch_size", batch_size)
        paths = [Path(p) for p in paths]
        bar = Progress(enabled=progress)
        bar.start("describing photos", len(paths))
        start = time.perf_counter()
        chunks, described, failures = [], [], []
        pending: list[np.ndarray] = []
        for done, path in enumerate(paths, start=1):
            try:
                pending.append(load_photo(path))
                described.append(path)
            except PhotoError as e:
                failures.append((path, e.reason))
            if len(pending) == batch_size or (done == len(paths) and pending):
                chunks.append(self.network.describe(np.stack(pending)))
                pending = []
            bar.update(done)
        descriptors = (
            np.concatenate(chunks) if chunks else np.empty((0, DESCRIPTOR_SIZE), np.float32)
        )
        bar.finish(
            f"described {len(described)} photo(s) in {time.perf_counter() - start:.1f} s"
            + (f"; {len(failures)} could not be read" if failures else "")
        )
        return descriptors, described, failures
