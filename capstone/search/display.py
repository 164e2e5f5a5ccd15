"""Showing search results: images fetched from their ``coco_url``, laid out in a grid.

Fetching is defensive, because a notebook must never crash on one bad URL:

- only ``http`` and ``https`` URLs are fetched;
- every request has a timeout, and the whole download a deadline of the same length;
- a download larger than ``max_bytes`` is refused, whether or not the server says its size;
- the bytes must decode as an image (PNG, JPEG, ... through Pillow, via matplotlib);
- a good image is kept in an on-disk cache keyed by the SHA-256 of its URL, so a grid shows
  again offline; a cached file that no longer decodes is fetched again.

Any failure is a `FetchError`, which `show_grid` turns into a placeholder tile saying why.
Demo images (host ``*.invalid``) have no photo: their tile lists their captions.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse, urlsplit

import numpy as np
import requests

from capstone.common.archive import atomic_write
from capstone.common.checks import count
from capstone.data.paths import cache_dir as default_cache_dir

__all__ = ["FetchError", "fetch_image", "is_generated_url", "show_grid", "usable_url"]

MAX_BYTES = 20_000_000  # COCO photos are ~160 kB; anything this large is not one
TIMEOUT = 10.0  # seconds
_CHUNK = 64 * 1024


class FetchError(RuntimeError):
    """An image could not be fetched or decoded; ``reason`` says why in a few words."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


def usable_url(url) -> str | None:
    """``url`` (stripped of spaces) if it may be fetched, shown, linked or exported, else None.

    Only ``http`` and ``https`` URLs with a host qualify: a ``javascript:`` or ``data:`` URL
    in the data must never become a link or an image source, nor a local file be read.

    >>> usable_url(" https://images.cocodataset.org/val2014/x.jpg ")
    'https://images.cocodataset.org/val2014/x.jpg'
    >>> usable_url("javascript:alert(1)") is None
    True
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # an invalid IPv6 host or port, say
        return None
    return url if parts.scheme.lower() in ("http", "https") and host else None


@functools.lru_cache(maxsize=1 << 16)  # the web app asks for every result it shows
def is_generated_url(url: str) -> bool:
    """Whether ``url`` points at a demo image (host under ``.invalid``), which has no photo."""
    host = urlparse(url).hostname or ""
    return host == "invalid" or host.endswith(".invalid")


def _decode(data: bytes, url: str) -> np.ndarray:
    from matplotlib import image  # matplotlib is slow to import: only when showing images

    try:
        return image.imread(io.BytesIO(data))
    except Exception as e:  # Pillow raises several types for bytes that are not an image
        raise FetchError(url, f"not an image ({type(e).__name__})") from e


def _download(url, *, timeout, max_bytes, session) -> bytes:
    """The body at ``url`` (``session``: a `requests.Session` or the `requests` module)."""
    deadline = time.monotonic() + timeout
    try:
        with session.get(url, timeout=timeout, stream=True) as response:
            if response.status_code != 200:
                raise FetchError(
                    url, f"HTTP {response.status_code} {response.reason or ''}".strip()
                )
            size = response.headers.get("Content-Length")
            if size is not None and size.isdigit() and int(size) > max_bytes:
                raise FetchError(url, f"too large ({int(size):,} bytes > {max_bytes:,})")
            chunks, total = [], 0
            for chunk in response.iter_content(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise FetchError(url, f"too large (over {max_bytes:,} bytes)")
                if time.monotonic() > deadline:
                    raise FetchError(url, f"timed out after {timeout:g} s")
                chunks.append(chunk)
    except requests.Timeout as e:
        raise FetchError(url, f"timed out after {timeout:g} s") from e
    except requests.RequestException as e:
        raise FetchError(url, f"network error ({type(e).__name__})") from e
    return b"".join(chunks)


def fetch_image(
    url: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    timeout: float = TIMEOUT,
    max_bytes: int = MAX_BYTES,
    session: requests.Session | None = None,
) -> np.ndarray:
    """Download (or read from the cache) the image at ``url``.

    Parameters
    ----------
    url : str
        An ``http`` or ``https`` URL with a host (`usable_url`), such as a COCO image's
        ``coco_url``.
    cache_dir : path-like, optional
        Where fetched images are kept (default: ``$CAPSTONE_HOME/cache/images``).
    timeout : float, optional (default=10)
        Seconds allowed for connecting, for each read, and for the whole download.
    max_bytes : int, optional (default=20,000,000)
        Largest download accepted.
    session : requests.Session, optional
        Reuse connections across calls (`show_grid` passes one).

    Returns
    -------
    numpy.ndarray, shape-(H, W) or (H, W, 3 or 4)
        The decoded image, as `matplotlib.image.imread` returns it.

    Raises
    ------
    FetchError
        If the URL is not http(s), the server fails or is slow, the file is too large or is
        not an image.
    """
    if usable_url(url) is None:
        raise FetchError(str(url), "only http and https URLs are fetched")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "images"
    path = folder / hashlib.sha256(url.encode()).hexdigest()
    if path.is_file():
        try:
            return _decode(path.read_bytes(), url)
        except FetchError:
            path.unlink(missing_ok=True)  # a corrupt cache entry: fetch it again below
    # Without a session, `requests.get` opens and closes one for this call.
    data = _download(url, timeout=timeout, max_bytes=max_bytes, session=session or requests)
    image = _decode(data, url)  # decode first: only good images are cached
    try:
        atomic_write(path, lambda f: f.write(data), overwrite=True)
    except OSError as e:  # a cache: the image is shown all the same
        warnings.warn(f"could not cache the image of {url} in {folder}: {e}", stacklevel=2)
    return image


def _tile_text(ax, text: str, color: str) -> None:
    ax.set_facecolor(color)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes)


def show_grid(
    results: Sequence,
    ncols: int = 3,
    *,
    cache_dir: str | os.PathLike | None = None,
    title: str | None = None,
    fetch: Callable[..., np.ndarray] = fetch_image,
    max_workers: int = 8,
):
    """A matplotlib grid of search results: image, rank, score, id and first caption.

    Parameters
    ----------
    results : Sequence[SearchResult]
        Objects with ``image_id``, ``score``, ``url`` and ``captions`` (what
        `capstone.search.engine.SearchEngine` returns), best first.
    ncols : int, optional (default=3)
        Tiles per row.
    cache_dir : path-like, optional
        Image cache folder, passed to ``fetch``.
    title : str, optional
        Figure title, e.g. the query.
    fetch : Callable, optional
        ``fetch(url, cache_dir=..., session=...) -> image``; `fetch_image` by default.
    max_workers : int, optional (default=8)
        Images downloaded at once.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per result (unused grid cells are hidden). A result whose image cannot be
        fetched gets a grey tile saying why; a demo image a tile with its captions.

    Examples
    --------
    With real data (shown, not run as a test)::

        fig = show_grid(engine.search("a dog on a beach", k=6))
    """
    import matplotlib.pyplot as plt

    ncols, max_workers = count("ncols", ncols), count("max_workers", max_workers)
    results = list(results)
    if not results:
        raise ValueError("`results` is empty: there is nothing to show")

    session = requests.Session()

    def load(result):
        if is_generated_url(result.url):
            return None  # a demo image: no photo exists
        try:
            return fetch(result.url, cache_dir=cache_dir, session=session)
        except FetchError as e:
            return e

    with session, ThreadPoolExecutor(max_workers=min(max_workers, len(results))) as pool:
        images = list(pool.map(load, results))

    nrows = -(-len(results) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(results) :]:
        ax.set_visible(False)
    for rank, (ax, result, image) in enumerate(zip(axes.flat, results, images, strict=False), 1):
        ax.set_xticks([])
        ax.set_yticks([])
        caption = result.captions[0].strip() if result.captions else ""
        if isinstance(image, np.ndarray):
            ax.imshow(image)
            ax.set_xlabel(textwrap.fill(caption, 40), fontsize=7)
        elif isinstance(image, FetchError):
            _tile_text(ax, "image unavailable:\n" + textwrap.fill(image.reason, 30), "0.85")
            ax.set_xlabel(textwrap.fill(caption, 40), fontsize=7)
        else:
            lines = [textwrap.fill(c.strip(), 36) for c in result.captions[:5]]
            _tile_text(ax, "generated image\n(no photo)\n\n" + "\n".join(lines), "0.95")
        ax.set_title(f"#{rank}  {result.score:.3f}  id {result.image_id}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
