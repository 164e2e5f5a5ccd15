"""Training triples: (caption, true image, confusor image), within one side of the split.

The images of a triple come from one side of the image-level split (`capstone.data.split`):
the training images for training, the validation images for its fixed validation triples. A
triple asks the model to place its caption nearer the true image than the confusor:

- a random confusor is any other image of the same split;
- a hard confusor is, of ``n_candidates`` random images, the one whose (randomly chosen)
  caption is most similar to the true caption (cosine of caption embeddings): an image that
  *sounds* like the right one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capstone.common.checks import count, in_range
from capstone.data.coco import CocoData

__all__ = ["Triples", "evaluation_triples", "make_triples", "validation_triples"]


@dataclass(frozen=True)
class Triples:
    """M triples as three aligned int64 index arrays, each of shape (M,).

    ``caption`` indexes captions; ``true_image`` and ``confusor`` index images.
    """

    caption: np.ndarray
    true_image: np.ndarray
    confusor: np.ndarray

    def __len__(self) -> int:
        return len(self.caption)

    def take(self, rows: np.ndarray) -> Triples:
        """The triples at ``rows``."""
        return Triples(self.caption[rows], self.true_image[rows], self.confusor[rows])


def _other_images(true_image: np.ndarray, pool: np.ndarray, size, rng) -> np.ndarray:
    """Images drawn uniformly from ``pool``, each different from its row's ``true_image``."""
    draw = pool[rng.integers(len(pool), size=size)]
    clash = draw == true_image.reshape(-1, *([1] * (draw.ndim - 1)))
    while clash.any():  # each round leaves ~1/len(pool) of the clashes: a handful of rounds
        draw[clash] = pool[rng.integers(len(pool), size=int(clash.sum()))]
        clash = draw == true_image.reshape(-1, *([1] * (draw.ndim - 1)))
    return draw


def _hard_confusors(
    data: CocoData,
    caption_embeddings: np.ndarray,
    caption: np.ndarray,
    candidates: np.ndarray,
    rng: np.random.Generator,
    chunk: int = 16_384,
) -> np.ndarray:
    """Of each row's (M, K) candidate images, the one whose caption is nearest the caption."""
    counts = np.diff(data.caption_offsets)[candidates]
    # One caption of each candidate, at random, stands for it.
    pick = (rng.random(candidates.shape) * counts).astype(np.int64)
    # An image without captions has none to compare: it must not borrow its neighbour's (or
    # index past the last caption), and it never wins while a candidate with captions exists.
    their_caption = np.minimum(data.caption_offsets[candidates] + pick, len(caption_embeddings) - 1)
    best = np.empty(len(caption), dtype=np.int64)
    for lo in range(0, len(caption), chunk):  # bounds the (chunk, K, d) gather
        hi = lo + chunk
        sims = np.einsum(
            "md,mkd->mk",
            caption_embeddings[caption[lo:hi]],
            caption_embeddings[their_caption[lo:hi]],
        )
        sims[counts[lo:hi] == 0] = -np.inf
        best[lo:hi] = np.argmax(sims, axis=1)
    return np.take_along_axis(candidates, best[:, None], axis=1)[:, 0]


def make_triples(
    data: CocoData,
    images: np.ndarray,
    rng: np.random.Generator,
    *,
    caption_embeddings: np.ndarray | None = None,
    hard_fraction: float = 0.0,
    n_candidates: int = 5,
) -> Triples:
    """One triple for every caption of ``images``, confusors drawn from ``images`` too.

    Parameters
    ----------
    data : CocoData
    images : numpy.ndarray, shape (n,)
        Image indices of one split (at least 2).
    rng : numpy.random.Generator
    caption_embeddings : numpy.ndarray, shape (n_captions, d), optional
        Needed for hard confusors.
    hard_fraction : float, optional (default=0)
        Fraction of triples (chosen at random) whose confusor is hard rather than random.
    n_candidates : int, optional (default=5)
        Candidates considered for each hard confusor.

    Returns
    -------
    Triples
        In caption order; shuffle them for training.
    """
    images = np.asarray(images, dtype=np.int64)
    if len(images) < 2:
        raise ValueError("`images` must hold at least 2 images to draw confusors from")
    in_range("hard_fraction", hard_fraction, 0, 1, low_open=False, high_open=False)
    if hard_fraction > 0 and caption_embeddings is None:
        raise ValueError("hard confusors need `caption_embeddings`")
    count("n_candidates", n_candidates)

    caption = np.flatnonzero(np.isin(data.caption_image, images))
    true_image = data.caption_image[caption]
    confusor = _other_images(true_image, images, len(caption), rng)

    hard = np.flatnonzero(rng.random(len(caption)) < hard_fraction)
    if len(hard):
        candidates = _other_images(true_image[hard], images, (len(hard), n_candidates), rng)
        confusor[hard] = _hard_confusors(data, caption_embeddings, caption[hard], candidates, rng)
    return Triples(caption, true_image, confusor)


def validation_triples(
    data: CocoData,
    val_images: np.ndarray,
    seed: int,
    *,
    caption_embeddings: np.ndarray | None = None,
    hard: bool = False,
) -> Triples:
    """The fixed validation triples of a run: the same for every epoch and for evaluation.

    With ``hard=True`` every confusor is hard (a harder test of the same model).
    """
    # A stream of its own, apart from the (seed, epoch) streams of training.
    rng = np.random.default_rng([seed, 1 << 30, int(hard)])
    return make_triples(
        data,
        val_images,
        rng,
        caption_embeddings=caption_embeddings,
        hard_fraction=1.0 if hard else 0.0,
    )


def evaluation_triples(
    data: CocoData, val_images: np.ndarray, seed: int, caption_embeddings: np.ndarray
) -> tuple[Triples, Triples]:
    """The run's validation triples with random confusors and with hard ones.

    What `capstone.evaluation.metrics.evaluation_report` measures triple accuracy on; the
    random ones are those training reports each epoch (`validation_triples`).
    """
    return (
        validation_triples(data, val_images, seed),
        validation_triples(
            data, val_images, seed, caption_embeddings=caption_embeddings, hard=True
        ),
    )
