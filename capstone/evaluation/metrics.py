"""Evaluation: triple accuracy, and retrieval both ways on 1,000-image pools.

Retrieval follows the "COCO 1K" protocol of the research literature: held-out images are
split into pools of 1,000, each image with its first 5 captions.

- caption -> image: every caption queries its pool's images; the rank of its own image;
- image -> caption: every image queries its pool's 5,000 captions; the rank of the first of
  its own captions (the best ranked of its 5).

From the ranks of all queries of all pools,

    Recall@K = fraction of queries whose answer ranks <= K
    median rank, and MRR = mean(1 / rank).

Chance, for caption -> image in a pool of P images: Recall@K = K / P, median rank (P + 1) / 2,
MRR = (1 + 1/2 + ... + 1/P) / P; image -> caption follows from drawing C = 5 right captions
out of 5P without replacement (`chance_metrics`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from capstone.data.coco import CocoData
from capstone.embeddings.image import ImageEmbedder

__all__ = [
    "TRIPLE_CHUNK",
    "RetrievalMetrics",
    "caption_ranks",
    "chance_metrics",
    "evaluation_report",
    "format_report",
    "image_ranks",
    "retrieval_metrics",
    "triple_accuracy",
]

KS = (1, 5, 10)


@dataclass(frozen=True)
class RetrievalMetrics:
    """Retrieval figures (recall as fractions in [0, 1]).

    ``recall_at_1`` ... ``mrr``: caption -> image; ``i2t_*``: image -> caption.
    """

    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    median_rank: float
    mrr: float
    i2t_recall_at_1: float
    i2t_recall_at_5: float
    i2t_recall_at_10: float
    i2t_median_rank: float
    i2t_mrr: float
    pool_size: int
    n_pools: int
    n_queries: int

    def as_dict(self) -> dict:
        return asdict(self)


def caption_ranks(
    caption_embeddings: np.ndarray, image_embeddings: np.ndarray, true_image: np.ndarray
) -> np.ndarray:
    """Rank of each caption's true image among all images, by dot-product similarity.

    `capstone.course_math.rank_of_true_image` for every caption, from one matrix product.

    Parameters
    ----------
    caption_embeddings : numpy.ndarray, shape (Q, d)
    image_embeddings : numpy.ndarray, shape (P, d)
    true_image : numpy.ndarray, shape (Q,)
        Index into ``image_embeddings`` of each caption's image.

    Returns
    -------
    numpy.ndarray, shape (Q,)
        float64 ranks, 1 = best: ``1 + #(better images) + #(tied images) / 2``. Counting ties
        as half keeps a degenerate model (all scores equal) at chance instead of rank 1.
    """
    scores = caption_embeddings @ image_embeddings.T
    own = np.take_along_axis(scores, np.asarray(true_image)[:, None], axis=1)
    better = np.count_nonzero(scores > own, axis=1)
    tied = np.count_nonzero(scores == own, axis=1) - 1
    return 1.0 + better + tied / 2.0


def image_ranks(
    image_embeddings: np.ndarray, caption_embeddings: np.ndarray, owner: np.ndarray
) -> np.ndarray:
    """Rank of each image's best-ranked own caption among all captions.

    Parameters
    ----------
    image_embeddings : numpy.ndarray, shape (P, d)
    caption_embeddings : numpy.ndarray, shape (Q, d)
    owner : numpy.ndarray, shape (Q,)
        Index into ``image_embeddings`` of each caption's image; every image owns one or more.

    Returns
    -------
    numpy.ndarray, shape (P,)
        float64 ranks, 1 = best: with ``s`` the best score of an own caption,
        ``1 + #(other captions above s) + #(other captions tied with s) / 2``; captions of the
        image itself never count against it.
    """
    owner = np.asarray(owner)
    scores = image_embeddings @ caption_embeddings.T  # (P, Q)
    own = owner[None, :] == np.arange(len(image_embeddings))[:, None]
    best = np.max(np.where(own, scores, -np.inf), axis=1, keepdims=True)
    better = np.count_nonzero((scores > best) & ~own, axis=1)
    tied = np.count_nonzero((scores == best) & ~own, axis=1)
    return 1.0 + better + tied / 2.0


def _summary(ranks: np.ndarray) -> list[float]:
    """Recall@1, @5, @10 (`capstone.course_math.recall_at_k`), median rank and MRR of ranks."""
    recalls = [float(np.mean(ranks <= k)) for k in KS]
    return [*recalls, float(np.median(ranks)), float(np.mean(1.0 / ranks))]


def chance_metrics(
    pool_size: int, n_pools: int = 1, captions_per_image: int = 5
) -> RetrievalMetrics:
    """The expected figures of a model that ranks at random, for comparison.

    Caption -> image: the rank is uniform on 1..P. Image -> caption: the C right captions of an
    image lie at random among the pool's N = C P, so the first of them ranks below r with
    probability ``P(rank > r) = prod_{i < r} (N - C - i) / (N - i)``.
    """
    p, c = pool_size, captions_per_image
    n = c * p
    # survival[r] = P(rank > r), r = 0 .. n - c + 1
    survival = np.concatenate(
        [[1.0], np.cumprod((n - c - np.arange(n - c + 1)) / (n - np.arange(n - c + 1)))]
    )
    pmf = survival[:-1] - survival[1:]  # P(rank = r), r = 1 .. n - c + 1
    ranks = np.arange(1, len(pmf) + 1)
    # the middle of the ranks where the distribution function reaches 1/2 (as np.median)
    cdf = np.cumsum(pmf)
    median = (
        ranks[np.searchsorted(cdf, 0.5 - 1e-12)] + ranks[np.searchsorted(cdf, 0.5 + 1e-12)]
    ) / 2
    return RetrievalMetrics(
        *(min(k, p) / p for k in KS),
        median_rank=(p + 1) / 2,
        mrr=float(np.sum(1.0 / np.arange(1, p + 1)) / p),
        **{f"i2t_recall_at_{k}": float(1 - survival[min(k, n - c + 1)]) for k in KS},
        i2t_median_rank=float(median),
        i2t_mrr=float(np.sum(pmf / ranks)),
        pool_size=p,
        n_pools=n_pools,
        n_queries=0,
    )


def retrieval_metrics(
    model: ImageEmbedder,
    data: CocoData,
    caption_embeddings: np.ndarray,
    images: np.ndarray,
    *,
    pool_size: int = 1000,
    captions_per_image: int = 5,
    seed: int = 0,
) -> RetrievalMetrics:
    """Caption -> image retrieval over pools of ``pool_size`` images of ``images``.

    The images are shuffled (seeded) and cut into ``len(images) // pool_size`` pools; with
    fewer than ``pool_size`` images there is one smaller pool of all of them (its size is
    reported: compare with `chance_metrics` of that size).

    Parameters
    ----------
    model : ImageEmbedder
    data : CocoData
    caption_embeddings : numpy.ndarray, shape (n_captions, d)
    images : numpy.ndarray
        Held-out image indices.
    pool_size, captions_per_image, seed : int
    """
    images = np.random.default_rng(seed).permutation(np.asarray(images, dtype=np.int64))
    n_pools = max(len(images) // pool_size, 1)
    size = min(pool_size, len(images))
    if size < 2:
        raise ValueError(f"retrieval needs at least 2 images, got {len(images)}")
    image_embeddings = model.embed(data.descriptors[images[: n_pools * size]])
    to_image, to_caption = [], []
    for p in range(n_pools):  # a handful of pools, each two matrix products
        pool = images[p * size : (p + 1) * size]
        n_caps = np.minimum(np.diff(data.caption_offsets)[pool], captions_per_image)
        caption = np.repeat(data.caption_offsets[pool], n_caps)
        caption += np.arange(len(caption)) - np.repeat(np.cumsum(n_caps) - n_caps, n_caps)
        owner = np.repeat(np.arange(size), n_caps)
        texts = model.embed_text(caption_embeddings[caption])
        pool_images = image_embeddings[p * size : (p + 1) * size]
        to_image.append(caption_ranks(texts, pool_images, owner))
        with_captions = n_caps > 0  # an image without captions has nothing to find
        to_caption.append(image_ranks(pool_images, texts, owner)[with_captions])
    return RetrievalMetrics(
        *_summary(np.concatenate(to_image)),
        *_summary(np.concatenate(to_caption)),
        pool_size=size,
        n_pools=n_pools,
        n_queries=sum(map(len, to_image)),
    )


#: Triples scored at once by `triple_accuracy`: its temporaries are a few (CHUNK, d) float32
#: arrays (~13 MB at d = 200) however many triples a run validates on.
TRIPLE_CHUNK = 16_384


def triple_accuracy(
    model: ImageEmbedder, data: CocoData, caption_embeddings: np.ndarray, triples
) -> float:
    """Fraction of triples with sim(caption, true image) > sim(caption, confusor).

    `capstone.course_math.triple_accuracy` of all triples. ``triples`` holds M (caption, true
    image, confusor) rows as three int index arrays of shape (M,), ``caption``, ``true_image``
    and ``confusor`` (`capstone.training.triples.Triples`, made above this module).

    Each image the triples name is embedded once, (U, d) with U <= 2M distinct images (a
    run's ~16,500 validation images rather than one (M, 512) descriptor gathered per caption:
    ~85,000 at COCO scale, 170 MB twice); the captions are then scored `TRIPLE_CHUNK` at a
    time, so memory does not grow with M. Every row is computed as a whole-batch product
    would compute it (float32).
    """
    images, where = np.unique(
        np.concatenate([triples.true_image, triples.confusor]), return_inverse=True
    )
    image_embeddings = model.embed(data.descriptors[images])  # (U, d)
    true_row, confusor_row = where[: len(triples)], where[len(triples) :]
    right = 0
    for lo in range(0, len(triples), TRIPLE_CHUNK):
        rows = slice(lo, lo + TRIPLE_CHUNK)
        caption = model.embed_text(caption_embeddings[triples.caption[rows]])
        sim_true = np.einsum("nd,nd->n", caption, image_embeddings[true_row[rows]])
        sim_conf = np.einsum("nd,nd->n", caption, image_embeddings[confusor_row[rows]])
        right += int(np.count_nonzero(sim_true > sim_conf))
    return right / len(triples) if len(triples) else float("nan")  # as np.mean of nothing


def evaluation_report(
    model: ImageEmbedder,
    data: CocoData,
    caption_embeddings: np.ndarray,
    val_images: np.ndarray,
    triples: tuple,
    *,
    seed: int = 0,
    pool_size: int = 1000,
) -> dict:
    """Everything `python -m capstone evaluate` prints, as plain data.

    The trained model is compared with an untrained one (its glorot-normal initialization for
    the same seed) and with chance. Triple accuracy is measured on ``triples``: the run's fixed
    validation triples with random and with hard confusors, a pair
    (`capstone.training.triples.evaluation_triples` makes it; see `triple_accuracy`).

    Returns
    -------
    dict
        ``{"pool_size", "n_pools", "n_queries", "val_images", "models": {name: figures}}``
        where name is "trained", "untrained" or "chance" and figures hold recall_at_1/5/10,
        median_rank, mrr, triple_accuracy and hard_triple_accuracy (0.5 for chance).
    """
    random_triples, hard_triples = triples
    models = {
        "trained": model,
        "untrained": ImageEmbedder(model.d, d_in=model.d_in, seed=seed),
    }
    figures = {}
    for name, m in models.items():
        metrics = retrieval_metrics(
            m, data, caption_embeddings, val_images, pool_size=pool_size, seed=seed
        )
        figures[name] = {
            **_figures(metrics),
            "triple_accuracy": triple_accuracy(m, data, caption_embeddings, random_triples),
            "hard_triple_accuracy": triple_accuracy(m, data, caption_embeddings, hard_triples),
        }
    chance = chance_metrics(metrics.pool_size)
    figures["chance"] = {**_figures(chance), "triple_accuracy": 0.5, "hard_triple_accuracy": 0.5}
    return {
        "pool_size": metrics.pool_size,
        "n_pools": metrics.n_pools,
        "n_queries": metrics.n_queries,
        "val_images": len(val_images),
        "models": figures,
    }


def _figures(metrics: RetrievalMetrics) -> dict:
    return {
        k: v for k, v in metrics.as_dict().items() if k not in ("pool_size", "n_pools", "n_queries")
    }


def format_report(report: dict) -> str:
    """`evaluation_report` as tables for the terminal: caption -> image, then image -> caption."""
    recall = [
        ("R@1", "recall_at_1", "{:6.1%}"),
        ("R@5", "recall_at_5", "{:6.1%}"),
        ("R@10", "recall_at_10", "{:6.1%}"),
        ("med.rank", "median_rank", "{:8.1f}"),
        ("MRR", "mrr", "{:6.3f}"),
    ]
    triples = [
        ("triple acc", "triple_accuracy", "{:10.3f}"),
        ("hard acc", "hard_triple_accuracy", "{:8.3f}"),
    ]
    n_images = report["n_pools"] * report["pool_size"]

    def table(columns, prefix="") -> list[str]:
        lines = [f"{'':10}" + "  ".join(f"{t:>{len(fmt.format(0))}}" for t, _, fmt in columns)]
        for name, fig in report["models"].items():
            cells = (fmt.format(fig[prefix + key]) for _, key, fmt in columns)
            lines.append(f"{name:10}" + "  ".join(cells))
        return lines

    return "\n".join(
        [
            f"caption -> image retrieval: {report['n_pools']} pool(s) of {report['pool_size']} "
            f"validation images, {report['n_queries']:,} caption queries",
            *table(recall + triples),
            "",
            f"image -> caption retrieval: the same pools, {n_images:,} image queries, each "
            "against its pool's captions",
            *table(recall, prefix="i2t_"),
        ]
    )
