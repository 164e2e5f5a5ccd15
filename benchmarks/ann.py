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
`capstone.search.ann.choose` picks and a sweep of its search parameter (``nprobe``, or the
candidates re-ranked where it has none): median and p99 of one
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


def turns(fns, queries: np.ndarray) -> np.ndarray:
    """Seconds of each ``fn(q)``, shape (len(fns), Q): the functions take turns query by query,
    so that other processes on a shared machine slow them alike."""
    out = np.empty((len(fns), len(queries)))
    for i, q in enumerate(queries):
        for j, fn in enumerate(fns):
            t = time.perf_counter()
            fn(q)
            out[j, i] = time.perf_counter() - t
    return out


def recall(found: np.ndarray, truth: np.ndarray, at: int) -> float:
    """Mean over queries of |found[:at] & truth[:at]| / at."""
    return float(
        np.mean([len(set(f[:at]) & set(t[:at])) / at for f, t in zip(found, truth, strict=True)])
    )


def sweep(settings, values) -> list:
    """``settings`` with each of ``values`` for its search parameter (``nprobe``) or, for an
    index without one, for its candidates."""
    if settings.search:
        name, _, _ = settings.search.partition("=")
        return [replace(settings, search=f"{name}={v}") for v in values]
    return [replace(settings, candidates=v) for v in values]


def scale_rows(matrix, queries, n_timed, values, label) -> tuple[list[str], dict]:
    """Table rows and plot points of one scale."""
    db = ImageDatabase(np.arange(len(matrix)), matrix)
    log(f"{label}: exact top 10 of {len(queries):,} queries")
    truth = np.concatenate(
        [top_k(db.scores(queries[i : i + 500]), 10) for i in range(0, len(queries), 500)]
    )
    settings = choose(*matrix.shape)
    log(f"{label}: building {settings.factory} on 2 threads")
    cpu = time.process_time()
    index = AnnIndex.build(db.embeddings, settings, progress=True)
    cpu = time.process_time() - cpu
    db._index = index
    size = len(faiss.serialize_index(index.index))
    batch = queries[:100]

    def exact(q):
        return db.query(q, 10, exact=True)

    def approximate(q):
        return db.query(q, 10)

    rows, points, exact_ms = [], {}, []
    for s in sweep(settings, values):
        index.settings = s
        faiss.ParameterSpace().set_index_parameters(index.index, s.search)
        found = np.concatenate(
            [index.search(queries[i : i + 500], 10)[1] for i in range(0, len(queries), 500)]
        )
        r1, r10 = recall(found, truth, 1), recall(found, truth, 10)
        misses = int(sum(set(f) != set(t) for f, t in zip(found, truth, strict=True)))
        with threadpool_limits(1):  # NumPy's BLAS on one thread, as faiss answers one query
            ex, tt = turns([exact, approximate], queries[:n_timed])
        eb, tb = turns(
            [lambda b: db.query_batch(b, 10, exact=True), lambda b: db.query_batch(b, 10)],
            [batch] * 5,
        )
        med, ex_med = np.median(tt) * 1e3, np.median(ex) * 1e3
        exact_ms.append(ex_med)
        chosen = "**" if s == settings else ""
        setting = f"{s.search}, " if s.search else ""
        rows.append(
            f"| {label} {chosen}{s.factory} ({setting}{s.candidates} candidates){chosen} "
            f"| {med:.3f} "
            f"| {np.percentile(tt, 99) * 1e3:.2f} | {ex_med:.2f} | {ex_med / med:.1f}x "
            f"| {r1:.4f} | {r10:.4f} | {misses} of {len(queries):,} "
            f"| {np.median(tb) * 1e3:.0f} vs {np.median(eb) * 1e3:.0f} "
            f"| {index.build_seconds:.0f} ({cpu:.0f} CPU s) "
            f"| {4 * matrix.shape[1]} + {size / len(matrix):.0f} |"
        )
        points.setdefault(s.factory, []).append((med, r10, s.search or f"{s.candidates}"))
        log(rows[-1])
    points["exact"] = (float(np.median(exact_ms)), 1.0)
    index.settings = settings
    faiss.ParameterSpace().set_index_parameters(index.index, settings.search)
    return rows, points


FLOOR = 1e-5  # where 1 - recall = 0 (the exact scan) sits on the log axis


def plot(all_points: dict, path: Path) -> None:
    """1 - recall@10 (log) against the median query time (log): one curve per index, its
    points labelled with nprobe or the candidates, the exact scan as a star of the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for color, (label, points) in zip(("C0", "C1", "C2"), all_points.items(), strict=False):
        ex_t, _ = points.pop("exact")
        ax.scatter([ex_t], [FLOOR], marker="*", s=160, color=color, label=f"{label}: exact scan")
        for factory, curve in points.items():
            ts, rs, names = zip(*curve, strict=True)
            miss = np.maximum(1 - np.array(rs), FLOOR)
            swept = "nprobe" if "=" in names[0] else "candidates"
            ax.plot(ts, miss, marker="o", color=color,
                    label=f"{label}: {factory} + re-rank (by {swept})")  # fmt: skip
            for i, (t, m, name) in enumerate(zip(ts, miss, names, strict=True)):
                lift = 3 + 8 * (i % 3) if m <= FLOOR else 3  # points with no miss sit side by side
                ax.annotate(name, (t, m), fontsize=7, xytext=(4, lift), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("median time of one text query, ms (one thread; log scale)")
    ax.set_ylabel("1 - recall@10 against the exact scan (log)")
    ax.axhline(0.001, color="grey", lw=0.6, ls="--")
    ax.axhline(0.01, color="grey", lw=0.6, ls=":")
    ax.text(ax.get_xlim()[0] * 1.05, 0.0011, "0.999", fontsize=7, color="grey")
    ax.text(ax.get_xlim()[0] * 1.05, 0.011, "0.99", fontsize=7, color="grey")
    ax.set_ylim(bottom=FLOOR / 2)
    ax.text(ax.get_xlim()[0] * 1.05, FLOOR * 0.6, "exact (no miss)", fontsize=7, color="grey")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("Approximate index vs exact scan: misses against time (lower left is better)")
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
    parser.add_argument("--coco-only", action="store_true", help="skip the million")
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
        "| rows, index (chosen in bold), candidates re-ranked | median ms | p99 ms "
        "| exact scan median ms, same turns | speed-up | recall@1 | recall@10 "
        "| top 10s that differ | batch of 100 ms, index vs exact | build s | bytes/image "
        "(float32 rows + index) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    points = {}
    rows, points[f"{len(emb):,}"] = scale_rows(
        emb, queries, args.timed, (300, 500, 700, 1000, 1500), f"{len(emb):,}"
    )
    lines += rows
    if not args.coco_only:
        big = million(emb, args.copies, args.noise)
        # an exact query reads 800 MB here: fewer timed turns
        rows, points[f"{len(big):,}"] = scale_rows(
            big, queries[:2000], min(args.timed, 300), (16, 32, 64, 96, 128), f"{len(big):,}"
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
