"""Stage 1: loading GloVe, capstone's cached load against gensim's text parser."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
from common import Row, child, fmt_mb, fmt_seconds, log, run_child, speedup, timed


@child
def glove_capstone(kw: dict) -> dict:
    """capstone's load (cached after the first), then reading every vector once."""
    from capstone.data.glove import load_word2vec_text

    seconds, wv = timed(lambda: load_word2vec_text(kw["path"], cache_dir=kw["cache_dir"]))
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    touch, _ = timed(lambda: float(np.sum(wv.vectors, dtype=np.float64)))
    return {
        "seconds": seconds,
        "maxrss": maxrss,
        "touch_seconds": touch,
        "shape": list(wv.vectors.shape),
    }


@child
def glove_gensim(kw: dict) -> dict:
    """gensim's parse of the word2vec text file."""
    from gensim.models import KeyedVectors

    seconds, kv = timed(lambda: KeyedVectors.load_word2vec_format(kw["path"], binary=False))
    return {"seconds": seconds, "shape": list(kv.vectors.shape)}


def stage_glove(files: dict, rows: list[Row], notes: list[str], repeat: int = 3) -> None:
    """Stage 1: capstone's cached GloVe load vs gensim, each in fresh processes."""
    kw = {"path": str(files["glove"]), "cache_dir": str(files["glove_cache"])}
    had_cache = any(Path(kw["cache_dir"]).glob("glove/*/words.txt"))
    log("stage 1: capstone GloVe load" + ("" if had_cache else " (first: builds the cache)"))
    first, first_rss = run_child("glove_capstone", **kw)
    runs = [run_child("glove_capstone", **kw) for _ in range(repeat - had_cache)]
    runs += [(first, first_rss)] if had_cache else []
    cached = min(r["seconds"] for r, _ in runs)
    touch = min(r["touch_seconds"] for r, _ in runs)
    rss = max(r["maxrss"] for r, _ in runs)
    rss_touched = max(m for _, m in runs)
    log("stage 1: gensim load_word2vec_format")
    gensim, gensim_rss = run_child("glove_gensim", path=kw["path"])
    if gensim["shape"] != runs[0][0]["shape"]:
        raise AssertionError(f"gensim loaded {gensim['shape']}, capstone {runs[0][0]['shape']}")
    ratio = gensim["seconds"] / cached
    rows.append(
        Row(
            "1. GloVe load (cached)",
            fmt_seconds(cached),
            f"gensim {fmt_seconds(gensim['seconds'])}",
            speedup(gensim["seconds"], cached),
            ">= 50x, ~1 s",
            ratio >= 50 and cached <= 1.0,
            f"{fmt_mb(rss)} vs gensim {fmt_mb(gensim_rss)}",
        )
    )
    first_note = (
        f"first load (gensim parse + writing the cache) {fmt_seconds(first['seconds'])}, "
        f"peak {fmt_mb(first_rss)}"
        if not had_cache
        else "the binary cache existed already (built by an earlier run)"
    )
    notes.append(
        f"stage 1: {gensim['shape'][0]:,} x {gensim['shape'][1]} vectors; best of {repeat} "
        f"cached loads, each in a fresh process (peak memory includes the interpreter and "
        f"imports); the cache is memory-mapped, and reading all vectors once as well takes "
        f"{fmt_seconds(cached + touch)} and brings the peak RSS to {fmt_mb(rss_touched)} "
        f"(the mapped file's pages); {first_note}"
    )
