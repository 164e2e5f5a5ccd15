"""Benchmarks of capstone at MS-COCO scale against straightforward baselines (project issue 4).

Run ``python benchmarks/run.py`` (COCO scale, under 15 minutes on 2 cores) or
``python benchmarks/run.py --quick`` (a smoke run: 5,000 images, 20,000 words). Stages:

0. generate a COCO-scale demo dataset and a 400,000-word GloVe file (cached, reused);
1. GloVe load: capstone's cached load vs gensim's text parser;
2. embedding every caption: capstone's vectorized embedding vs a per-caption Python loop;
3. one training epoch: capstone's MyGrad step vs a hand-written NumPy step (and PyTorch);
4. query latency: text -> top 10 over every image;
5. peak memory of the whole pipeline, in a subprocess.

The table is printed and written to ``benchmarks/results/latest.md``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # so that children and imports find the sibling modules
    sys.path.insert(0, str(HERE))

from baselines import (  # noqa: E402
    NumpyTrainer,
    TorchTrainer,
    embed_loop,
    gensim_vectors,
    top_k_argsort,
)
from datagen import Scale, prepare  # noqa: E402

#: MS-COCO train2014 (82,783 images, 414,113 captions) and GloVe 6B 200-d (400,000 words).
FULL = Scale(n_images=82_783, n_captions=414_113, n_words=400_000)
#: A smoke run: 5,000 images with COCO's captions per image, 20,000 words.
QUICK = Scale(n_images=5_000, n_captions=round(5_000 * 414_113 / 82_783), n_words=20_000)


@dataclass
class Row:
    """One line of the results table.

    Attributes
    ----------
    stage : str
    capstone, baseline : str
        The measurements, formatted.
    ratio : str
        capstone against its baseline (how many times faster, or its share of the floor).
    target : str
        The goal, as text.
    met : bool | None
        Whether the goal is met; None when there is no goal.
    memory : str
        Peak memory of this stage, where it is cheap to know.
    """

    stage: str
    capstone: str
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: bool | None = None
    memory: str = "-"


def log(message: str) -> None:
    """Print a progress line to stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Best (least) wall time of ``repeat`` calls of ``fn`` and the result of the last one.

    Other work on the machine only ever adds time, so the least is the steadiest estimate.
    """
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def fmt_seconds(seconds: float) -> str:
    """A duration with a sensible unit: ``"812 µs"``, ``"3.4 ms"``, ``"1.25 s"``, ``"2.1 min"``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.1f} min"


def fmt_mb(kilobytes: float) -> str:
    """``ru_maxrss`` (KiB on Linux) in MiB."""
    return f"{kilobytes / 1024:,.0f} MiB"


def speedup(baseline: float, ours: float) -> str:
    """``baseline / ours`` as ``"12.3x faster"`` (or ``"0.8x (slower)"``)."""
    ratio = baseline / ours
    return f"{ratio:,.1f}x faster" if ratio >= 1 else f"{ratio:.2f}x (slower)"


# ---------------------------------------------------------------------------------------------
# Subprocesses
# ---------------------------------------------------------------------------------------------

CHILDREN: dict[str, Callable[[dict], dict]] = {}


def child(fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
    """Register ``fn`` as a task that `run_child` can run in a fresh interpreter."""
    CHILDREN[fn.__name__] = fn
    return fn


# Runs its arguments as a command and reports the command's stdout, exit code and peak RSS.
# On Linux a child's ru_maxrss starts at its parent's RSS at the fork (exec keeps the high-water
# mark of the forked image), so a child of this large process would report at least this
# process's size; a child of this small launcher reports its own peak.
_LAUNCHER = """\
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": p.returncode, "out": p.stdout.decode(), "maxrss": peak}))
"""


def run_child(name: str, **kwargs) -> tuple[dict, int]:
    """Run the registered task ``name`` in a fresh Python process.

    Returns
    -------
    result : dict
        What the task returned (sent back as JSON on stdout).
    maxrss : int
        The task's peak resident set size in KiB: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of
        a small launcher process whose only child is the task.
    """
    task = [sys.executable, str(Path(__file__).resolve()), "--child", name, json.dumps(kwargs)]
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *task], stdout=subprocess.PIPE, check=True
    )
    report = json.loads(launched.stdout)
    if report["code"] != 0:
        raise RuntimeError(f"child task {name!r} failed with exit code {report['code']}")
    return json.loads(report["out"].strip().splitlines()[-1]), report["maxrss"]


# ---------------------------------------------------------------------------------------------
# Stage 1: GloVe load
# ---------------------------------------------------------------------------------------------


@child
def glove_capstone(kw: dict) -> dict:
    """capstone's load (cached after the first), then reading every vector once."""
    from capstone.glove import load_word2vec_text

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


# ---------------------------------------------------------------------------------------------
# Stage 2: caption embeddings
# ---------------------------------------------------------------------------------------------


def stage_embed(files: dict, rows: list[Row], notes: list[str], repeat: int = 3) -> dict:
    """Stage 2: capstone's vectorized caption embedding vs a per-caption loop.

    Returns
    -------
    dict
        ``data`` (CocoData), ``glove``, ``text`` (the fitted TextEmbedder) and
        ``caption_embeddings``, for the later stages.
    """
    from capstone.coco import CocoData
    from capstone.glove import load_word2vec_text
    from capstone.text import TextEmbedder

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


# ---------------------------------------------------------------------------------------------
# Stage 3: training
# ---------------------------------------------------------------------------------------------

StepFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, float]]


def blas_threads(n: int | None):
    """A context limiting BLAS to ``n`` threads (None: leave the default)."""
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def run_interleaved(
    steps: dict[str, tuple[StepFn, int | None]],
    batches: Callable[[int, int], Iterator[tuple]],
    n: int,
    chunk: int,
) -> dict[str, tuple[np.ndarray, float]]:
    """Run every step function on batches ``0..n-1``, taking turns every ``chunk`` batches.

    Turns (in alternating order) expose all of them to the same conditions: on a small shared
    machine, the speed of small BLAS calls drifts by 2x or more over seconds.

    Parameters
    ----------
    steps : dict
        name -> (step function, BLAS threads to run it with, None for the default).

    Returns
    -------
    dict
        For each name: the seconds of each chunk, shape (ceil(n / chunk),), and the mean loss.
    """
    names = list(steps)
    times = {name: [] for name in names}
    losses = dict.fromkeys(names, 0.0)
    for k, lo in enumerate(range(0, n, chunk)):
        for name in names if k % 2 == 0 else names[::-1]:
            step, threads = steps[name]
            with blas_threads(threads):
                start = time.perf_counter()
                for batch in batches(lo, min(lo + chunk, n)):
                    losses[name] += step(*batch)[0]
                times[name].append(time.perf_counter() - start)
    return {name: (np.array(times[name]), losses[name] / n) for name in names}


def stage_train(
    ctx: dict,
    rows: list[Row],
    notes: list[str],
    *,
    max_batches: int | None,
    verify: int = 20,
    chunk: int = 100,
) -> None:
    """Stage 3: one epoch of capstone's MyGrad training step vs NumPy (and PyTorch) steps.

    All step functions see the same triples (those `capstone.train.train` draws for epoch 1)
    in the same order, gathered the same way, taking turns every ``chunk`` steps. capstone's
    step runs with one BLAS thread, as `capstone.train.train` runs it; the NumPy floor is the
    faster of one BLAS thread and the default, chunk by chunk. Adds ``model`` (trained by
    capstone) to ``ctx``.
    """
    from mynn.optimizers.sgd import SGD

    from capstone.model import ImageEmbedder
    from capstone.train import TrainConfig, train_step
    from capstone.triples import make_triples, split_images

    config = TrainConfig(recipe="course")
    data, captions = ctx["data"], ctx["caption_embeddings"]
    train_images, _ = split_images(
        data.n_images, val_fraction=config.val_fraction, seed=config.seed
    )
    rng = np.random.default_rng([config.seed, 1])  # as `train` does for epoch 1
    triples = make_triples(data, train_images, rng)
    triples = triples.take(rng.permutation(len(triples)))
    bs = config.batch_size
    n_epoch = -(-len(triples) // bs)
    n_timed = min(n_epoch, max_batches or n_epoch)

    def batches(lo: int, hi: int) -> Iterator[tuple]:
        for i in range(lo, hi):
            b = triples.take(slice(i * bs, (i + 1) * bs))
            yield captions[b.caption], data.descriptors[b.true_image], data.descriptors[b.confusor]

    def trainers() -> tuple[ImageEmbedder, dict, dict]:
        """A fresh capstone model and fresh baselines, all with the same initial weights."""
        model = ImageEmbedder(captions.shape[1], d_in=data.descriptors.shape[1], seed=config.seed)
        opt = SGD(model.parameters, learning_rate=config.learning_rate, momentum=config.momentum)
        hyper = (model.weight.data, config.learning_rate, config.momentum, config.margin)
        others = {"NumPy": (NumpyTrainer(*hyper), 1), "NumPy*": (NumpyTrainer(*hyper), None)}
        try:
            others["PyTorch"] = (TorchTrainer(*hyper), None)
        except ImportError:
            pass
        ours = (lambda c, t, f: train_step(model, opt, c, t, f, config.margin), 1)
        steps = {"capstone": ours, **{k: (v.step, n) for k, (v, n) in others.items()}}
        return model, steps, {k: v for k, (v, _) in others.items()}

    # The floor is honest only if it computes the same thing: compare weights after a few steps.
    model, steps, others = trainers()
    run_interleaved(steps, batches, verify, verify)
    for name in ("NumPy", "NumPy*"):
        if not np.allclose(model.weight.data, others[name].weight, rtol=1e-4, atol=1e-6):
            diff = float(np.abs(model.weight.data - others[name].weight).max())
            raise AssertionError(f"{name} step differs from MyGrad's after {verify} steps: {diff}")

    log(f"stage 3: {n_timed:,} training steps each: {', '.join(steps)} (taking turns)")
    model, steps, others = trainers()
    results = run_interleaved(steps, batches, n_timed, chunk)
    ctx["model"] = model
    drift = float(np.abs(model.weight.data - others["NumPy"].weight).max())
    ours = results["capstone"][0]
    floor = np.minimum(results["NumPy"][0], results["NumPy*"][0])
    epoch = {name: times.sum() for name, (times, _) in results.items()}
    epoch["floor"] = floor.sum()
    epoch = {name: t * n_epoch / n_timed for name, t in epoch.items()}

    what = "epoch" if n_timed == n_epoch else f"epoch (extrapolated from {n_timed:,} steps)"
    ratio = float(np.median(ours / floor))
    rows.append(
        Row(
            f"3. training {what}",
            fmt_seconds(epoch["capstone"]),
            f"NumPy {fmt_seconds(epoch['floor'])}",
            f"{ratio:.2f}x the floor",
            "<= 1.3x the NumPy floor",
            ratio <= 1.3,
        )
    )
    vs_torch = ["PyTorch not installed", "-"]
    if "PyTorch" in results:
        vs_torch = [
            f"PyTorch {fmt_seconds(epoch['PyTorch'])}",
            f"{float(np.median(ours / results['PyTorch'][0])):.2f}x PyTorch's time",
        ]
    rows.append(Row("3b. training epoch vs PyTorch", fmt_seconds(epoch["capstone"]), *vs_torch))
    per_step = {name: t / n_epoch * 1e6 for name, t in epoch.items()}
    mean_losses = ", ".join(f"{loss:.4f} ({name})" for name, (_, loss) in results.items())
    notes.append(
        f"stage 3: {len(triples):,} training triples = {n_epoch:,} steps of {bs} (course "
        f"defaults: SGD lr {config.learning_rate}, momentum {config.momentum}, margin "
        f"{config.margin}, d={captions.shape[1]}); per step "
        + ", ".join(f"{v:.0f} µs ({k})" for k, v in per_step.items())
        + ", batch gathering included. capstone runs with 1 BLAS thread as `train` does; "
        "NumPy with 1 thread, NumPy* with the default; the floor is the faster of the two in "
        f"each turn. The implementations take turns every {chunk} steps; the ratio is the "
        f"median over those {len(ours)} turns of capstone's time over the floor's (the epoch "
        f"times are sums). The NumPy step matches MyGrad's weights after {verify} steps "
        f"(allclose, rtol 1e-4); after all the timed steps the largest weight difference is "
        f"{drift:.1g}; mean loss {mean_losses}."
    )


# ---------------------------------------------------------------------------------------------
# Stage 4: queries
# ---------------------------------------------------------------------------------------------


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
    from capstone.database import ImageDatabase
    from capstone.dataset import Dataset
    from capstone.paths import DataFiles
    from capstone.search import SearchEngine

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


# ---------------------------------------------------------------------------------------------
# Stage 5: memory of the whole pipeline
# ---------------------------------------------------------------------------------------------

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
    from capstone.coco import CocoData
    from capstone.database import ImageDatabase
    from capstone.dataset import Dataset
    from capstone.glove import load_word2vec_text
    from capstone.paths import DataFiles
    from capstone.search import SearchEngine
    from capstone.text import TextEmbedder
    from capstone.train import TrainConfig, train

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
        f"trains 1 epoch (`capstone.train.train`), builds the database and answers "
        f"{n_queries:,} queries (`SearchEngine.search`) in {fmt_seconds(seconds['search'])}; "
        "its peak RSS is `getrusage(RUSAGE_CHILDREN).ru_maxrss` of a small launcher whose "
        "only child it is (a child of the large benchmark process would inherit that "
        "process's RSS as its starting high-water mark). The peak-memory column gives the "
        "pipeline's own peak once each step is done (cumulative)."
    )
    return peaks


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process and children).

    Their growth over a run tells how much other processes competed for the cores.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
        busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4)) / ticks
    except (OSError, ValueError):
        busy = float("nan")
    ours = sum(
        u.ru_utime + u.ru_stime
        for u in (resource.getrusage(resource.RUSAGE_SELF),
                  resource.getrusage(resource.RUSAGE_CHILDREN))
    )  # fmt: skip
    return busy, ours


def machine() -> str:
    """Cores, CPU model, Python, NumPy and the other libraries that are timed."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    for name in ("mygrad", "mynn", "gensim", "torch"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except (ImportError, AttributeError):
            versions.append(f"{name} not installed" if name == "torch" else f"{name} ?")
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()}; " + ", ".join(versions)


def markdown_table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    head = "| stage | capstone | baseline | ratio | target | met? | peak memory |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "-"}[r.met]
        lines.append(
            f"| {r.stage} | {r.capstone} | {r.baseline} | {r.ratio} | {r.target} | {met} "
            f"| {r.memory} |"
        )
    return "\n".join(lines)


def report(
    rows: list[Row], notes: list[str], *, command: str, wall: float, others: float, out: Path
) -> str:
    """Format the results (table, notes, machine) and write them to ``out``.

    ``others`` is the CPU time other processes used during the run, in seconds.
    """
    text = "\n".join(
        [
            "# capstone benchmarks",
            "",
            f"- command: `{command}`",
            f"- date: {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
            f"- machine: {machine()}",
            f"- wall time of the whole run: {fmt_seconds(wall)}",
            f"- other processes on the machine used {others:,.0f} CPU-seconds meanwhile "
            f"({others / wall:.0%} of one core); timings are noisier when that is high",
            "",
            markdown_table(rows),
            "",
            "Notes:",
            "",
            *[f"- {n}" for n in notes],
            "",
        ]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the benchmarks (or one child task)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache", help="data cache folder")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "latest.md", help="results file"
    )
    parser.add_argument(
        "--max-batches",
        type=int,
        help="time only this many training steps and extrapolate to an epoch (default: all)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("child_args", nargs="?", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](json.loads(args.child_args))))
        return 0

    start, (busy0, ours0) = time.perf_counter(), cpu_seconds()
    scale = QUICK if args.quick else FULL
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    rows: list[Row] = []
    notes: list[str] = []

    files = prepare(args.cache, scale, log=log)
    rows.append(
        Row(
            "0. generate data",
            "reused cache" if files["reused"] else fmt_seconds(files["seconds"]),
        )
    )
    notes.append(
        f"data: {files['n_images']:,} images ({files['n_without_descriptor']} without "
        f"descriptor), {files['n_captions']:,} captions ({files['n_caption_words']:,} distinct "
        f"words); GloVe file {scale.n_words:,} words x {scale.dim} "
        f"({files['glove_bytes'] / 1e6:,.0f} MB)"
    )

    stage_glove(files, rows, notes)
    ctx = stage_embed(files, rows, notes)
    stage_train(ctx, rows, notes, max_batches=args.max_batches)
    stage_query(files, ctx, rows, notes)
    peaks = stage_memory(files, rows, notes)
    for row in rows:  # the pipeline's peak so far after each stage, where it maps to one
        key = {"2": "embed", "3": "train", "4a": "search"}.get(row.stage.split(".")[0])
        if key is not None:
            row.memory = f"{fmt_mb(peaks[key])} (pipeline so far)"

    wall = time.perf_counter() - start
    busy, ours = cpu_seconds()
    others = max(busy - busy0 - (ours - ours0), 0.0)
    text = report(rows, notes, command=command, wall=wall, others=others, out=args.out)
    print(text)
    log(f"written {args.out} ({fmt_seconds(wall)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
