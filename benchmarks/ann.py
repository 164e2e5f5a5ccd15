"""The approximate index (project issue 18): exact scan vs faiss at COCO scale and at 1,000,000.

Run ``python benchmarks/ann.py`` (about 15 minutes on 2 cores). It needs trained embeddings:

1. a generated dataset of COCO's size (82,783 images, 414,113 captions,
   `capstone.data.minicoco`) with random 200-d word vectors for its caption words, cached
   under ``--cache``;
2. the default recipe trained ``--epochs`` epochs on it; every image embedded (the database)
   and 10,000 captions of the held-out validation images embedded as text queries;
3. the million: each image embedding copied ``--copies`` times with N(0, ``--noise``^2) noise
   per coordinate and renormalized (a neighbourhood of near-duplicates, as a photo library
   holds), queries as before.

For each scale: the exact scan (`ImageDatabase.query(..., exact=True)`) against the index
`capstone.search.ann.choose` picks and a sweep of its search parameter: median and p99 of one
query (faiss on one thread, as `AnnIndex.search` runs one query), recall@1 and @10 against
the exact top 10, a batch of 100 queries, build seconds and bytes per image. Writes
``benchmarks/results/ann.md`` and the recall vs time plot ``docs/ann-recall.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from common import machine  # noqa: E402
from datagen import write_word2vec_text  # noqa: E402

from capstone.common.vectors import normalize_rows, top_k  # noqa: E402
from capstone.search.ann import AnnIndex, choose  # noqa: E402
from capstone.search.database import ImageDatabase  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def embeddings(cache: Path, epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """(image embeddings (82,612, 200), 10,000 held-out caption queries), cached."""
    out = cache / f"ann-embeddings-{epochs}ep.npz"
    if out.is_file():
        with np.load(out) as z:
            return z["embeddings"], z["queries"]
    from capstone.data import minicoco
    from capstone.dataset import load_dataset
    from capstone.training.recipes import TrainConfig
    from capstone.training.train import train

    folder = cache / "minicoco-82783"
    if not (folder / "resnet18_features.pkl").is_file():
        log(f"generating 82,783 images into {folder}")
        minicoco.generate(folder, 82_783, n_captions=414_113)
    glove = cache / "ann-glove200.w2v.txt"
    if not glove.is_file():
        words = load_dataset(folder, embed_captions=False).text.idf.words
        write_word2vec_text(glove, list(words), 200, 0)
    ds = load_dataset(folder, glove=glove)
    log(f"training the default recipe {epochs} epochs")
    result = train(ds.data, ds.caption_embeddings, TrainConfig(epochs=epochs), progress=False)
    emb = result.model.embed(ds.data.descriptors)
    held = np.flatnonzero(np.isin(ds.data.caption_image, result.val_images))
    pick = np.random.default_rng(0).choice(held, 10_000, replace=False)
    queries = result.model.embed_text(ds.caption_embeddings[pick])
    np.savez(out, embeddings=emb, queries=queries)
    return emb, queries


def million(emb: np.ndarray, copies: int, noise: float) -> np.ndarray:
    """Each row copied ``copies`` times with N(0, noise^2) noise, renormalized."""
    rng = np.random.default_rng(1)
    out = np.empty((len(emb) * copies, emb.shape[1]), np.float32)
    for c in range(copies):
        block = emb + rng.normal(0, noise, emb.shape).astype(np.float32)
        out[c * len(emb) : (c + 1) * len(emb)] = normalize_rows(block)
    return out


def timed(fn, queries: np.ndarray) -> np.ndarray:
    """Seconds of ``fn(q)`` for each query row."""
    out = np.empty(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        fn(q)
        out[i] = time.perf_counter() - t
    return out


def recall(found: np.ndarray, truth: np.ndarray, at: int) -> float:
    """Mean over queries of |found[:at] & truth[:at]| / at."""
    return float(
        np.mean([len(set(f[:at]) & set(t[:at])) / at for f, t in zip(found, truth, strict=True)])
    )


def scale_rows(matrix, queries, n_timed, sweep, label) -> tuple[list[str], dict]:
    """Table rows and plot points of one scale."""
    db = ImageDatabase(np.arange(len(matrix)), matrix)
    log(f"{label}: exact top 10 of {len(queries):,} queries")
    truth = np.concatenate(
        [top_k(queries[i : i + 500] @ db._by_dim, 10) for i in range(0, len(queries), 500)]
    )
    with threadpool_limits(1):  # NumPy's BLAS on one thread, as faiss answers one query
        exact_t = timed(lambda q: db.query(q, 10, exact=True), queries[:n_timed])
    batch = queries[:100]
    t = time.perf_counter()
    db.query_batch(batch, 10, exact=True)
    exact_batch = time.perf_counter() - t
    settings = choose(len(matrix))
    log(f"{label}: building {settings.factory} on 2 threads")
    index = AnnIndex.build(db.embeddings, settings, progress=True)
    db._index = index
    size = len(faiss.serialize_index(index.index))
    rows = [
        f"| {label} exact scan | {np.median(exact_t) * 1e3:.3f} "
        f"| {np.percentile(exact_t, 99) * 1e3:.3f} | 1 | 1 | {exact_batch * 1e3:.1f} | - "
        f"| {4 * matrix.shape[1]} |"
    ]
    points = {"exact": (np.median(exact_t) * 1e3, 1.0)}
    name, _, _ = settings.search.partition("=")
    for value in sweep:
        for candidates in (settings.candidates,):
            s = replace(settings, search=f"{name}={value}", candidates=candidates)
            index.settings = s
            faiss.ParameterSpace().set_index_parameters(index.index, s.search)
            found = np.concatenate(
                [index.search(queries[i : i + 500], 10)[1] for i in range(0, len(queries), 500)]
            )
            r1, r10 = recall(found, truth, 1), recall(found, truth, 10)
            misses = int(sum(set(f) != set(t) for f, t in zip(found, truth, strict=True)))
            with threadpool_limits(1):
                tt = timed(lambda q: db.query(q, 10), queries[:n_timed])
            t = time.perf_counter()
            db.query_batch(batch, 10)
            tb = time.perf_counter() - t
            chosen = "**" if s.search == settings.search else ""
            rows.append(
                f"| {label} {chosen}{s.factory} {s.search}, {s.candidates} re-ranked{chosen} "
                f"| {np.median(tt) * 1e3:.3f} | {np.percentile(tt, 99) * 1e3:.3f} | {r1:.4f} "
                f"| {r10:.4f} ({misses} of {len(queries):,} top 10s differ) | {tb * 1e3:.1f} "
                f"| {index.build_seconds:.0f} | {4 * matrix.shape[1]} + {size / len(matrix):.0f} |"
            )
            points.setdefault(s.factory, []).append((np.median(tt) * 1e3, r10, s.search))
            log(rows[-1])
    index.settings = settings
    faiss.ParameterSpace().set_index_parameters(index.index, settings.search)
    return rows, points


def plot(all_points: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in all_points.items():
        ex_t, _ = points.pop("exact")
        ax.scatter([ex_t], [1.0], marker="*", s=120, label=f"{label}: exact scan")
        for factory, curve in points.items():
            ts, rs, names = zip(*curve, strict=True)
            ax.plot(ts, rs, marker="o", label=f"{label}: {factory} + exact re-rank")
            for t, r, name in zip(ts, rs, names, strict=True):
                ax.annotate(
                    name.split("=")[1],
                    (t, r),
                    fontsize=7,
                    xytext=(3, -9),
                    textcoords="offset points",
                )
    ax.set_xscale("log")
    ax.set_xlabel("median time of one text query, ms (one thread, log scale)")
    ax.set_ylabel("recall@10 against the exact scan")
    ax.axhline(0.999, color="grey", lw=0.5, ls="--")
    ax.axhline(0.99, color="grey", lw=0.5, ls=":")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Approximate index vs exact scan (labels: efSearch / nprobe)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--epochs", type=int, default=4, help="(4)")
    parser.add_argument(
        "--copies", type=int, default=12, help="copies of each image at the million (12)"
    )
    parser.add_argument("--noise", type=float, default=0.03, help="(0.03 a coordinate)")
    parser.add_argument("--timed", type=int, default=1000, help="queries timed one by one (1,000)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ann.md")
    parser.add_argument("--plot", type=Path, default=HERE.parent / "docs" / "ann-recall.png")
    args = parser.parse_args(argv)
    emb, queries = embeddings(args.cache, args.epochs)
    lines = [
        f"# Approximate index: `python benchmarks/ann.py` on {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{machine()}",
        "",
        f"faiss {faiss.__version__}, default threads {faiss.omp_get_max_threads()}; "
        "one query on one thread.",
        "",
        "| index | median ms | p99 ms | recall@1 | recall@10 | batch of 100, ms | build s "
        "| bytes/image (rows + index) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    points = {}
    rows, points[f"{len(emb):,}"] = scale_rows(
        emb, queries, args.timed, (256, 384, 512, 640, 768), f"{len(emb):,}"
    )
    lines += rows
    big = million(emb, args.copies, args.noise)
    log(f"{len(big):,} rows")
    rows, points[f"{len(big):,}"] = scale_rows(
        big, queries[:2000], args.timed, (16, 32, 64, 96, 128), f"{len(big):,}"
    )
    lines += rows
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    plot(points, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
