"""Stage 5: peak memory of the whole pipeline, in a fresh process, step by step.

Every memory figure of the benchmarks (here and stage 6's server) is measured one way, so that
the next run repeats it: in a fresh interpreter (its own address space: nothing inherited from
the large benchmark process), the peak resident set size is the kernel's high-water mark
``VmHWM`` of ``/proc/self/status``, reset to the current RSS before each step by writing ``5``
to ``/proc/self/clear_refs`` (Linux >= 4.0), so each step reports its own peak; the whole
pipeline's peak is the largest of them (the interpreter's start and imports included).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from common import Row, child, fmt_mb, fmt_seconds, log, run_child

#: The steps of the pipeline, as (key, label).
PIPELINE = (
    ("start", "start + imports"),
    ("data", "load data"),
    ("glove", "GloVe"),
    ("embed", "embed captions"),
    ("train", "train"),
    ("search", "database + queries"),
)

#: How the memory figures are measured (for the notes).
METHOD = (
    "peak RSS = `VmHWM` of `/proc/self/status` in a fresh process, reset to the current RSS "
    "before each step (`5` written to `/proc/self/clear_refs`): each step's own peak; a "
    "whole figure is the largest step's"
)


def memory_kib() -> tuple[int, int]:
    """This process's (peak since the last `reset_peak`, current) resident set size, KiB:
    ``VmHWM`` and ``VmRSS`` of ``/proc/self/status``."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                fields[name] = int(value.split()[0])
    return fields["VmHWM"], fields["VmRSS"]


def reset_peak() -> None:
    """Reset this process's ``VmHWM`` to its current RSS (Linux's ``clear_refs`` code 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class Steps:
    """Each step's own peak and the RSS after it (KiB), and the seconds since the start."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}
        self.after: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    def done(self, key: str) -> None:
        """Record step ``key``'s peak and RSS, and reset the peak for the next step."""
        self.peaks[key], self.after[key] = memory_kib()
        self.seconds[key] = time.perf_counter() - self.start
        reset_peak()

    def as_dict(self) -> dict:
        return {"peaks": self.peaks, "after": self.after, "seconds": self.seconds}


@child
def pipeline(kw: dict) -> dict:
    """Everything from files to answered queries, recording each step's peak RSS; the trained
    model is saved to ``kw["model"]`` (stage 6's server loads it)."""
    steps = Steps()
    from capstone.common.memory import release_freed_memory
    from capstone.data.coco import CocoData
    from capstone.data.glove import load_word2vec_text
    from capstone.data.paths import DataFiles
    from capstone.dataset import Dataset
    from capstone.embeddings.text import TextEmbedder
    from capstone.search.database import ImageDatabase
    from capstone.search.engine import SearchEngine
    from capstone.training.recipes import TrainConfig
    from capstone.training.train import train

    steps.done("start")
    files = DataFiles(Path(kw["captions"]), Path(kw["features"]), Path(kw["glove"]), "argument")
    data = CocoData.load(files.captions, files.features)
    steps.done("data")
    glove = load_word2vec_text(files.glove, cache_dir=kw["cache_dir"])
    steps.done("glove")
    text, embeddings = TextEmbedder.fit(data.captions, glove)
    release_freed_memory()  # as `capstone.dataset.load_dataset` does
    steps.done("embed")
    model = train(data, embeddings, TrainConfig(epochs=1), progress=False).model
    del embeddings  # searching needs no caption embeddings (`search` and `serve` load none)
    steps.done("train")
    db = ImageDatabase.build(model, data.image_ids, data.descriptors)
    engine = SearchEngine(Dataset(files, data, glove, text, None), model, db)
    for i in np.random.default_rng(5).choice(data.n_captions, kw["n_queries"], replace=False):
        engine.search(data.captions[i], 10)
    steps.done("search")
    model.save(kw["model"], overwrite=True)
    return steps.as_dict()


def stage_memory(
    files: dict, rows: list[Row], notes: list[str], model_path: Path, n_queries: int = 1_000
) -> dict:
    """Stage 5: peak memory of the whole pipeline in a fresh process; its model goes to
    ``model_path``.

    Returns
    -------
    dict
        ``peaks``: each step's own peak RSS (KiB, keys of `PIPELINE`), ``after``: the RSS after
        it, ``seconds``: since the start, and ``peak``: the whole pipeline's.
    """
    log("stage 5: the whole pipeline in a subprocess (data, GloVe, embed, 1 epoch, queries)")
    kw = {k: str(files[k]) for k in ("captions", "features", "glove")}
    result, _ = run_child(
        "pipeline", **kw, cache_dir=str(files["glove_cache"]), n_queries=n_queries,
        model=str(model_path),
    )  # fmt: skip
    peaks, after, seconds = result["peaks"], result["after"], result["seconds"]
    peak = max(peaks.values())
    rows.append(
        Row(
            "5. peak memory, whole pipeline",
            f"{fmt_mb(peak)} ({peak * 1024 / 1e9:.3f} GB)",
            target="< 1 GB",
            met=peak * 1024 < 1e9,
            memory=", ".join(
                f"{label} {fmt_mb(peaks[key])} (then {fmt_mb(after[key])})"
                for key, label in PIPELINE
            ),
        )
    )
    notes.append(
        "stage 5: one process loads the data and the cached GloVe, embeds every caption, "
        f"trains 1 epoch (`capstone.training.train.train`), builds the database and answers "
        f"{n_queries:,} queries (`SearchEngine.search`) in {fmt_seconds(seconds['search'])}, "
        "the caption embeddings dropped once trained on (searching needs none). "
        f"Method: {METHOD}. The peak-memory column gives each step's own peak and, in "
        "brackets, the RSS it leaves held."
    )
    return {**result, "peak": peak}
