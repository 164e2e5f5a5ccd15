"""Stage 4: query latency, text -> top 10 over every image, and batch throughput."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from baselines import top_k_argsort
from common import Row, fmt_seconds, log, speedup, timed


def latencies(calls: dict[str, tuple[Callable[[object], object], list]]) -> dict[str, np.ndarray]:
    """Wall time of each call ``fn(items[i])``, in seconds, taking turns query by query.

    Parameters
    ----------
    calls : dict
        name -> (fn, items); all item lists have the same length. Each function is called
        once on its first item before timing (warm-up); then, for each i, every function
        is called on its item i, in an order that rotates with i.
    """
    names = list(calls)
    n = len(calls[names[0]][1])
    out = {name: np.empty(n) for name in names}
    for fn, items in calls.values():
        fn(items[0])
    for i in range(n):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            fn, items = calls[name]
            start = time.perf_counter()
            fn(items[i])
            out[name][i] = time.perf_counter() - start
    return out


def fmt_latency(times: np.ndarray) -> str:
    """``"median 1.2 ms, p99 3.4 ms"``."""
    return f"median {fmt_seconds(np.median(times))}, p99 {fmt_seconds(np.percentile(times, 99))}"


def stage_query(
    files: dict, ctx: dict, rows: list[Row], notes: list[str], n_queries: int = 1_000
) -> None:
    """Stage 4: text -> top 10 over every image, one query at a time and in batches.

    The queries are ``n_queries`` random captions of the dataset. capstone answers through
    `SearchEngine.search` (embedding, top-k, results with URLs and captions) and
    `ImageDatabase.query` (given the query vector); the baseline scores every image and sorts
    all the scores.
    """
    from capstone.data.paths import DataFiles
    from capstone.dataset import Dataset
    from capstone.search.database import ImageDatabase
    from capstone.search.engine import SearchEngine

    data, model, text = ctx["data"], ctx["model"], ctx["text"]
    t_build, db = timed(lambda: ImageDatabase.build(model, data.image_ids, data.descriptors))
    dataset = Dataset(
        DataFiles(files["captions"], files["features"], files["glove"], "argument"),
        data,
        ctx["glove"],
        text,
        ctx["caption_embeddings"],
    )
    engine = SearchEngine(dataset, model, db)
    rng = np.random.default_rng(4)
    texts = [data.captions[i] for i in rng.choice(data.n_captions, n_queries, replace=False)]
    vectors = text.embed(texts)

    log(f"stage 4: {n_queries:,} single queries over {len(db):,} images")
    times = latencies(
        {
            "text": (lambda t: engine.search(t, 10), texts),
            "vector": (lambda v: db.query(v, 10), vectors),
            "baseline": (lambda v: top_k_argsort(db.embeddings, v, 10), vectors),
        }
    )
    with_text, vector_only, baseline = times["text"], times["vector"], times["baseline"]
    for v in vectors[:50]:
        ours = [m.image_id for m in db.query(v, 10)]
        if ours != db.image_ids[top_k_argsort(db.embeddings, v, 10)].tolist():
            raise AssertionError("ImageDatabase.query disagrees with a full sort")
    t_batch, _ = timed(lambda: db.query_batch(vectors, 10), 3)
    t_search_batch, _ = timed(lambda: engine.search_batch(texts, 10), 3)

    median = float(np.median(with_text))
    rows.append(
        Row(
            "4a. query text -> top 10, incl. embedding",
            fmt_latency(with_text),
            target="median < 2 ms",
            met=median < 2e-3,
        )
    )
    rows.append(
        Row(
            "4b. query vector -> top 10",
            fmt_latency(vector_only),
            f"full sort: {fmt_latency(baseline)}",
            speedup(np.median(baseline), np.median(vector_only)),
        )
    )
    rows.append(
        Row(
            f"4c. batch of {n_queries:,} queries",
            f"{n_queries / t_batch:,.0f} queries/s",
            f"full sort: {1 / baseline.mean():,.0f} queries/s",
            speedup(baseline.sum(), t_batch),
        )
    )
    gigabytes = db.embeddings.nbytes / 1e9
    notes.append(
        f"stage 4: {n_queries:,} random captions as queries over {len(db):,} images x "
        f"{db.dim} (float32, {gigabytes * 1e3:.0f} MB); building the database took "
        f"{fmt_seconds(t_build)}. Incl. embedding = `SearchEngine.search` (tokenize, embed, "
        f"top-k, results with URL and captions); vector = `ImageDatabase.query`. Batches "
        f"(`query_batch`, best of 3): {n_queries / t_batch:,.0f} queries/s given vectors, "
        f"{n_queries / t_search_batch:,.0f} queries/s with `search_batch` from text. A single "
        f"query must read every embedding once: at the median vector-query time that is "
        f"{gigabytes / np.median(vector_only):.0f} GB/s."
    )
