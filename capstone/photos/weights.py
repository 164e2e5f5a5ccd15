"""torchvision's ResNet-18 ImageNet weights: the file given, else cached, else downloaded once.

The course's descriptors use torchvision's ``IMAGENET1K_V1`` weights, the file
``resnet18-f37072fd.pth`` (`WEIGHTS_URL`; its sha256 starts with ``f37072fd``, which is how
torch hub checks it). `locate_weights` finds it: an explicit file, else the cache
(``<data home>/cache/weights``), else a download (`fetch_weights`);
`capstone.photos.weight_files.load_state_dict` reads it.

Nothing touches the network at import time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import requests

from capstone.common.archive import atomic_write
from capstone.common.progress import Progress
from capstone.data.paths import cache_dir as data_cache_dir
from capstone.photos.weight_files import WEIGHTS_FILE

__all__ = [
    "SHA256_PREFIX",
    "WEIGHTS_URL",
    "WeightsUnavailable",
    "default_weights_dir",
    "fetch_weights",
    "locate_weights",
]

WEIGHTS_URL = f"https://download.pytorch.org/models/{WEIGHTS_FILE}"
SHA256_PREFIX = "f37072fd"
TIMEOUT = 30.0  # seconds to connect, and between two chunks of the download
_CHUNK = 1 << 20


class WeightsUnavailable(RuntimeError):
    """The weights are neither given, nor cached, nor downloadable right now."""


# -- finding the file: explicit, cached, or downloaded -----------------------------------------


def default_weights_dir() -> Path:
    """``<data home>/cache/weights``: where a downloaded weights file is kept."""
    return data_cache_dir() / "weights"


def _unavailable(reason: str, cache_dir: Path) -> WeightsUnavailable:
    return WeightsUnavailable(
        f"the ResNet-18 weights are not available: {reason}. Either pass --weights FILE, a "
        f"{WEIGHTS_FILE} (or a .safetensors of the same weights) copied from a machine that is "
        f"online (there: curl -LO {WEIGHTS_URL}), or run once while online to download them "
        f"into {cache_dir}"
    )


def _write_verified(response: requests.Response, file, progress: Progress, cache_dir: Path) -> None:
    """Stream ``response`` into ``file``; refuse it (raise) unless its sha256 is the expected."""
    digest = hashlib.sha256()
    done = 0
    for chunk in response.iter_content(_CHUNK):
        file.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        progress.update(done)
    if not digest.hexdigest().startswith(SHA256_PREFIX):
        raise _unavailable(
            f"the download's sha256 is {digest.hexdigest()[:16]}..., expected "
            f"{SHA256_PREFIX}... (a corrupt or wrong file: it was not kept)",
            cache_dir,
        )


def fetch_weights(cache_dir: str | os.PathLike, *, progress: bool = True) -> Path:
    """Download ``resnet18-f37072fd.pth`` into ``cache_dir`` unless it is already there.

    The file is streamed to a temporary file, its sha256 checked against the ``f37072fd``
    prefix (as torch hub does), then renamed into place: an interrupted or corrupt download
    leaves nothing behind.

    Parameters
    ----------
    cache_dir : path-like
        Folder of the cached file (created if needed).
    progress : bool, optional (default=True)
        Show a progress bar on stderr.

    Returns
    -------
    pathlib.Path
        ``cache_dir / "resnet18-f37072fd.pth"``.

    Raises
    ------
    WeightsUnavailable
        If the download fails (no network, server error, timeout) or its hash is wrong; the
        message says how to get the file another way.
    """
    cache_dir = Path(cache_dir)
    path = cache_dir / WEIGHTS_FILE
    if path.is_file():
        return path
    bar = Progress(enabled=progress)
    try:
        with requests.get(WEIGHTS_URL, stream=True, timeout=TIMEOUT) as response:
            response.raise_for_status()
            bar.start(f"downloading {WEIGHTS_FILE}", int(response.headers.get("content-length", 0)))
            atomic_write(
                path, lambda f: _write_verified(response, f, bar, cache_dir), overwrite=True
            )
    except requests.RequestException as e:
        # a connection error's text is a page of urllib3 detail: say what it means
        why = "no connection" if isinstance(e, requests.ConnectionError) else str(e)
        raise _unavailable(f"downloading {WEIGHTS_URL} failed ({why})", cache_dir) from e
    bar.finish(f"saved {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path


def locate_weights(
    weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """The ResNet-18 weights file to use: ``weights`` if given, else the cached download, else
    a fresh download (`fetch_weights`).

    Parameters
    ----------
    weights : path-like, optional
        An explicit ``.pth`` or ``.safetensors`` file (``--weights FILE``).
    cache_dir : path-like, optional
        Cache folder (default: `default_weights_dir`, ``<data home>/cache/weights``).
    download : bool, optional (default=True)
        Whether a missing cached file may be downloaded.
    progress : bool, optional (default=True)
        Show the download's progress bar on stderr.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If ``weights`` is given but is not a file.
    WeightsUnavailable
        If nothing is cached and the download is off or fails.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no such weights file (expected {WEIGHTS_FILE} or a .safetensors file)"
            )
        return path
    folder = Path(cache_dir) if cache_dir is not None else default_weights_dir()
    cached = folder / WEIGHTS_FILE
    if cached.is_file():
        return cached
    if not download:
        raise _unavailable(f"{cached} does not exist and downloading is off", folder)
    return fetch_weights(folder, progress=progress)
