"""Stage 5: peak memory of the whole pipeline, in a fresh process."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
from common import Row, child, fmt_mb, fmt_seconds, log, run_child

#: The steps of the pipeline, as (key, label).
PIPELINE = (
    ("data", "load data"),
    ("glove", "GloVe"),
    ("embed", "embed captions"),
    ("train", "train"),
    ("search", "database + queries"),
)


@child
def pipeline(kw: dict) -> dict:
    """Everything from files to answered queries, recording the peak RSS after each step."""
    from capstone.data.coco import CocoData
    from capstone.data.glove import load_word2vec_text
    from capstone.data.paths import DataFiles
    from capstone.dataset import Dataset
    from capstone.embeddings.text import TextEmbedder
    from capstone.search.database import ImageDatabase
    from capstone.search.engine import SearchEngine
    from capstone.training.recipes import TrainConfig
    from capstone.training.train import train

    peaks, seconds, start = {}, {}, time.perf_counter()

    def done(key: str) -> None:
        peaks[key] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        seconds[key] = time.perf_counter() - start

    files = DataFiles(Path(kw["captions"]), Path(kw["features"]), Path(kw["glove"]), "argument")
    data = CocoData.load(files.captions, files.features)
    done("data")
    glove = load_word2vec_text(files.glove, cache_dir=kw["cache_dir"])
    done("glove")
    text, embeddings = TextEmbedder.fit(data.captions, glove)
    done("embed")
    model = train(data, embeddings, TrainConfig(epochs=1), progress=False).model
    done("train")
    db = ImageDatabase.build(model, data.image_ids, data.descriptors)
    engine = SearchEngine(Dataset(files, data, glove, text, embeddings), model, db)
    for i in np.random.default_rng(5).choice(data.n_captions, kw["n_queries"], replace=False):
        engine.search(data.captions[i], 10)
    done("search")
    return {"peaks": peaks, "seconds": seconds}


def stage_memory(files: dict, rows: list[Row], notes: list[str], n_queries: int = 1_000) -> dict:
    """Stage 5: peak memory of the whole pipeline in a fresh process.

    Returns
    -------
    dict
        The peak RSS (KiB) of the pipeline once each step of `PIPELINE` is done.
    """
    log("stage 5: the whole pipeline in a subprocess (data, GloVe, embed, 1 epoch, queries)")
    kw = {k: str(files[k]) for k in ("captions", "features", "glove")}
    result, maxrss = run_child(
        "pipeline", **kw, cache_dir=str(files["glove_cache"]), n_queries=n_queries
    )
    peaks, seconds = result["peaks"], result["seconds"]
    rows.append(
        Row(
            "5. peak memory, whole pipeline",
            f"{fmt_mb(maxrss)} ({maxrss * 1024 / 1e9:.3f} GB)",
            target="< 1.5 GB",
            met=maxrss * 1024 < 1.5e9,
            memory=", ".join(f"{label} {fmt_mb(peaks[key])}" for key, label in PIPELINE),
        )
    )
    notes.append(
        "stage 5: one process loads the data and the cached GloVe, embeds every caption, "
        f"trains 1 epoch (`capstone.training.train.train`), builds the database and answers "
        f"{n_queries:,} queries (`SearchEngine.search`) in {fmt_seconds(seconds['search'])}; "
        "its peak RSS is `getrusage(RUSAGE_CHILDREN).ru_maxrss` of a small launcher whose "
        "only child it is (a child of the large benchmark process would inherit that "
        "process's RSS as its starting high-water mark). The peak-memory column gives the "
        "pipeline's own peak once each step is done (cumulative)."
    )
    return peaks
