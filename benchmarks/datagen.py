"""Stage 0 of the benchmarks: a COCO-scale demo dataset and a GloVe-sized word2vec text file.

Both are written into a cache folder and reused by later runs: `prepare` regenerates only when
the folder's ``meta.json`` (written last, so it marks a complete folder) does not match the
requested sizes.

The GloVe file has the shape of the course's ``glove.6B.200d.txt.w2v``: a header ``"V d"``, then
``word x1 ... xd`` per line, values with 6 decimals. Its words are every word of the captions
plus random filler words, in random order; its vectors are random (the benchmarks time loading
and embedding, not retrieval quality).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from capstone.data import minicoco
from capstone.data.coco_files import load_captions
from capstone.data.paths import CAPTIONS_FILE, FEATURES_FILE
from capstone.text.tokens import tokenize_batch

__all__ = ["Scale", "prepare", "write_word2vec_text"]

GLOVE_NAME = "glove.w2v.txt"
META_NAME = "meta.json"
_ROWS_PER_BLOCK = 10_000


@dataclass(frozen=True)
class Scale:
    """Sizes of a benchmark dataset.

    Attributes
    ----------
    n_images, n_captions : int
        Images and captions of the generated mini-COCO (COCO: 82,783 and 414,113).
    n_words, dim : int
        Words and dimension of the GloVe file (course: 400,000 and 200).
    seed : int
        Seeds the dataset and the word vectors.
    """

    n_images: int
    n_captions: int
    n_words: int
    dim: int = 200
    seed: int = 0

    @property
    def name(self) -> str:
        """Folder name of this scale inside the cache."""
        return f"{self.n_images}img-{self.n_captions}cap-{self.n_words}w-{self.dim}d-s{self.seed}"


def _filler_words(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    """``n`` distinct random lowercase words (4-12 letters) that are not in ``taken``."""
    words: dict[str, None] = {}
    while len(words) < n:
        m = int(1.1 * (n - len(words))) + 100
        letters = rng.integers(ord("a"), ord("z") + 1, size=(m, 12), dtype=np.uint8)
        lengths = rng.integers(4, 13, size=m)
        raw = letters.tobytes()
        for i, length in enumerate(lengths.tolist()):
            word = raw[12 * i : 12 * i + length].decode("ascii")
            if word not in taken:
                words[word] = None
    return list(words)[:n]


def _format_block(values: np.ndarray) -> list[bytes]:
    """Format a (rows, d) block as ``" x1 x2 ... xd"`` lines with 6 decimals, vectorized.

    Each value takes 10 byte slots ``" -D.DDDDDD"``; the sign slot is dropped for values that
    are not negative, and |x| must be below 10.
    """
    rows, d = values.shape
    q = np.rint(np.abs(values) * 1e6).astype(np.int64)
    chars = np.empty((rows, d, 10), dtype=np.uint8)
    chars[..., 0] = ord(" ")
    chars[..., 1] = ord("-")
    chars[..., 2] = ord("0") + q // 1_000_000
    chars[..., 3] = ord(".")
    for k in range(6):
        chars[..., 9 - k] = ord("0") + (q // 10**k) % 10
    keep = np.ones((rows, d, 10), dtype=bool)
    keep[..., 1] = (values < 0) & (q > 0)
    flat = np.concatenate(
        [chars.reshape(rows, -1), np.full((rows, 1), ord("\n"), np.uint8)], axis=1
    )
    mask = np.concatenate([keep.reshape(rows, -1), np.ones((rows, 1), bool)], axis=1)
    return flat[mask].tobytes().split(b"\n")[:-1]


def write_word2vec_text(path: Path, words: list[str], dim: int, seed: int) -> None:
    """Write random ``dim``-d vectors for ``words`` as a word2vec text file at ``path``.

    Values are N(0, 0.4^2) clipped to (-10, 10), written with 6 decimals. The file is written
    to a temporary name and renamed, so an interrupted run leaves no partial file.
    """
    rng = np.random.default_rng([seed, 1])
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(f"{len(words)} {dim}\n".encode())
        for lo in range(0, len(words), _ROWS_PER_BLOCK):
            block = words[lo : lo + _ROWS_PER_BLOCK]
            values = np.clip(rng.normal(0.0, 0.4, size=(len(block), dim)), -9.999, 9.999)
            lines = zip(block, _format_block(values), strict=True)
            f.write(b"".join(w.encode() + line + b"\n" for w, line in lines))
    os.replace(tmp, path)


def prepare(cache: Path, scale: Scale, *, log=print) -> dict:
    """Generate (or reuse) the dataset and GloVe file of ``scale`` under ``cache``.

    Parameters
    ----------
    cache : Path
        The benchmarks' cache folder; this scale gets a subfolder of its own.
    scale : Scale
    log : callable
        Receives progress messages.

    Returns
    -------
    dict
        ``folder``, ``captions``, ``features``, ``glove`` (paths), ``glove_cache`` (the folder
        for capstone's binary GloVe cache), ``seconds`` (time spent generating, 0 when reused)
        and ``reused``, plus the generator's counts.
    """
    folder = cache / scale.name
    paths = {
        "folder": folder,
        "captions": folder / CAPTIONS_FILE,
        "features": folder / FEATURES_FILE,
        "glove": folder / GLOVE_NAME,
        "glove_cache": folder / "capstone-cache",
    }
    meta_path = folder / META_NAME
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("scale") == asdict(scale) and all(
            paths[k].is_file() for k in ("captions", "features", "glove")
        ):
            log(f"stage 0: reusing {folder}")
            return {**paths, **meta["counts"], "seconds": 0.0, "reused": True}

    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log(f"stage 0: generating {scale.n_images:,} images / {scale.n_captions:,} captions ...")
    info = minicoco.generate(
        folder, scale.n_images, n_captions=scale.n_captions, seed=scale.seed, overwrite=True
    )
    log(f"stage 0: dataset written in {time.perf_counter() - start:.1f} s")
    vocabulary = tokenize_batch(load_captions(paths["captions"])["caption"]).words
    if len(vocabulary) > scale.n_words:
        raise ValueError(f"{len(vocabulary)} caption words do not fit in {scale.n_words} words")
    rng = np.random.default_rng([scale.seed, 0])
    words = vocabulary + _filler_words(rng, scale.n_words - len(vocabulary), set(vocabulary))
    words = [words[i] for i in rng.permutation(len(words))]
    write_word2vec_text(paths["glove"], words, scale.dim, scale.seed)
    seconds = time.perf_counter() - start
    log(f"stage 0: GloVe file written ({len(vocabulary):,} caption words); total {seconds:.1f} s")
    counts = {
        "n_images": info["n_images"],
        "n_captions": info["n_captions"],
        "n_without_descriptor": info["n_without_descriptor"],
        "n_caption_words": len(vocabulary),
        "glove_bytes": paths["glove"].stat().st_size,
    }
    meta_path.write_text(json.dumps({"scale": asdict(scale), "counts": counts}, indent=1))
    return {**paths, **counts, "seconds": seconds, "reused": False}
