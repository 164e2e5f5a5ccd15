"""Stage 2: embedding every caption, capstone's vectorized embedding against a per-caption loop."""

from __future__ import annotations

import numpy as np
from baselines import embed_loop, gensim_vectors
from common import Row, fmt_seconds, log, speedup, timed


def stage_embed(files: dict, rows: list[Row], notes: list[str], repeat: int = 3) -> dict:
    """Stage 2: capstone's vectorized caption embedding vs a per-caption loop.

    Returns
    -------
    dict
        ``data`` (CocoData), ``glove``, ``text`` (the fitted TextEmbedder) and
        ``caption_embeddings``, for the later stages.
    """
    from capstone.data.coco import CocoData
    from capstone.data.glove import load_word2vec_text
    from capstone.embeddings.text import TextEmbedder

    t_data, data = timed(lambda: CocoData.load(files["captions"], files["features"]))
    glove = load_word2vec_text(files["glove"], cache_dir=files["glove_cache"])
    log(f"stage 2: embedding {data.n_captions:,} captions (capstone)")
    t_fit, (text, embeddings) = timed(lambda: TextEmbedder.fit(data.captions, glove), repeat)
    t_embed, again = timed(lambda: text.embed(data.captions), repeat)
    log("stage 2: embedding the captions one by one (baseline loop)")
    kv = gensim_vectors(glove.words, glove.vectors)
    idf = dict(zip(text.idf.words, text.idf.idf.tolist(), strict=True))
    t_loop, reference = timed(lambda: embed_loop(data.captions, kv, idf))
    for name, ours in (("TextEmbedder.fit", embeddings), ("TextEmbedder.embed", again)):
        if not np.allclose(ours, reference, rtol=0, atol=1e-5):
            worst = float(np.abs(ours - reference).max())
            raise AssertionError(f"{name} differs from the loop by up to {worst:.2g}")
    rows.append(
        Row(
            f"2. embed {data.n_captions:,} captions",
            fmt_seconds(t_fit),
            f"loop {fmt_seconds(t_loop)}",
            speedup(t_loop, t_fit),
            ">= 20x, < 5 s",
            t_loop / t_fit >= 20 and t_fit < 5,
        )
    )
    notes.append(
        f"stage 2: capstone = `TextEmbedder.fit` (tokenize once, IDF, embed; best of "
        f"{repeat}); embedding alone (`TextEmbedder.embed`, given the IDF) "
        f"{fmt_seconds(t_embed)} ({t_loop / t_embed:.1f}x the loop's speed). The loop gets "
        f"the same IDF for free and looks words up in a gensim KeyedVectors; both results "
        f"agree with the loop's to atol 1e-5. Loading captions and descriptors "
        f"(`CocoData.load`, which drops the {data.n_dropped_captions:,} captions of images "
        f"without a descriptor) takes {fmt_seconds(t_data)}."
    )
    return {"data": data, "glove": glove, "text": text, "caption_embeddings": embeddings}
