"""In-batch margin ranking losses: every other image of a batch is a confusor.

A batch holds B captions and their true images. With unit caption vectors c_i and image
vectors v_j, the scores are ``S[i, j] = <c_i, v_j>``: the diagonal scores true pairs, and
every (i, j) whose images differ is a triple (caption i, true image i, confusor image j)::

    confusable[i, j] = image_id[i] != image_id[j]      (never a caption's own image, even
                                                        when two captions of it share a batch)
    hinge(i, j)      = max(0, margin - (S[i, i] - S[i, j]))

The course's loss on these triples is `mygrad.nnet.margin_ranking_loss(S[i, i], S[i, j], 1,
margin)`, the mean hinge. Two ways to use the batch (Faghri et al. 2018, "VSE++"):

- ``"sum"`` (VSE0): the mean hinge over every confusable (i, j), B - 1 confusors a caption;
- ``"max"`` (max violation, VSE++): the mean over captions of the hinge of the *hardest*
  confusor, ``j*(i) = argmax_{j confusable} S[i, j]``. Its gradient flows only through the
  confusor that matters most, which ranks the true image first rather than merely above
  average.

``both_directions`` adds the image -> caption loss on the same scores: image j's true caption
is caption j (the diagonal), and caption i of another image is a confusor, ``hinge = max(0,
margin - (S[j, j] - S[i, j]))``; the loss is then the mean of the two directions' losses.

`in_batch_loss_reference` computes the same loss with plain loops over enumerated triples;
`tests/training/test_losses.py` holds the two equal.
"""

from __future__ import annotations

import mygrad as mg
import numpy as np
from mygrad.nnet.losses import margin_ranking_loss

__all__ = ["VIOLATIONS", "confusable", "in_batch_loss", "in_batch_loss_reference"]

VIOLATIONS = ("sum", "max")


def confusable(image_ids: np.ndarray) -> np.ndarray:
    """(B, B) bool: ``True`` where image j may be a confusor for caption i (other image id).

    Examples
    --------
    >>> confusable(np.array([7, 8, 7])).astype(int).tolist()
    [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    """
    image_ids = np.asarray(image_ids)
    return image_ids[:, None] != image_ids[None, :]


def in_batch_loss(
    captions: mg.Tensor | np.ndarray,
    images: mg.Tensor,
    image_ids: np.ndarray,
    margin: float,
    *,
    violation: str = "sum",
    both_directions: bool = False,
) -> tuple[mg.Tensor, float]:
    """The in-batch margin ranking loss of B (caption, true image) pairs, and its accuracy.

    Parameters
    ----------
    captions : mygrad.Tensor or numpy.ndarray, shape (B, d)
        Unit caption vectors (a Tensor when the text side is learned).
    images : mygrad.Tensor, shape (B, d)
        Unit image vectors; row i is caption i's true image.
    image_ids : numpy.ndarray, shape (B,)
        The image of each row: rows with the same id are never each other's confusors.
    margin : float
    violation : {"sum", "max"}
        Mean hinge over all confusors, or the hinge of the hardest confusor per caption.
    both_directions : bool
        Add the image -> caption loss (captions of other images as confusors for an image).

    Returns
    -------
    loss : mygrad.Tensor, shape ()
        Differentiable; the mean of the two directions' losses when ``both_directions``.
    accuracy : float
        Fraction of confusable (caption, confusor image) pairs with ``S[i, i] > S[i, j]``,
        the triple accuracy of all the batch's triples (``nan`` if there are none).
    """
    if violation not in VIOLATIONS:
        raise ValueError(f"`violation` must be one of {VIOLATIONS}, got {violation!r}")
    mask = confusable(image_ids)
    scores = mg.matmul(captions, mg.transpose(images))  # S[i, j] = <c_i, v_j>
    s = scores.data
    if not mask.any():  # one image only: no triple, nothing to learn
        return 0.0 * mg.sum(scores), float("nan")
    accuracy = float(np.mean((np.diag(s)[:, None] > s)[mask]))

    # Each triple as two cells of S: its true pair (a, a) and its confusor pair (r, c).
    if violation == "sum":
        r, c = np.nonzero(mask)
        a = r  # caption r: true image r, confusor image c
        if both_directions:  # image c: true caption c, confusor caption r (same cell S[r, c])
            a, r, c = np.concatenate([r, c]), np.concatenate([r, r]), np.concatenate([c, c])
    else:  # the hardest confusor of each caption (row) and of each image (column)
        # Every row has one: the batch holds two images (mask.any()), and every caption's image
        # differs from one of them.
        masked = np.where(mask, s, -np.inf)
        a = np.arange(len(s))
        r, c = a, np.argmax(masked, axis=1)
        if both_directions:
            r = np.concatenate([r, np.argmax(masked, axis=0)])
            a, c = np.concatenate([a, a]), np.concatenate([c, a])
    # One mean over the triples of both directions: they are equally many, so this is the
    # mean of the two directions' losses.
    return margin_ranking_loss(scores[a, a], scores[r, c], 1, margin), accuracy


def in_batch_loss_reference(
    captions: np.ndarray,
    images: np.ndarray,
    image_ids: np.ndarray,
    margin: float,
    *,
    violation: str = "sum",
    both_directions: bool = False,
) -> float:
    """`in_batch_loss` with plain loops over every (caption, true image, confusor) triple.

    For checking only: O(B^2) Python steps.
    """
    scores = np.asarray(captions, np.float64) @ np.asarray(images, np.float64).T
    b = len(scores)

    def hinge(true: float, confusor: float) -> float:
        return max(0.0, margin - (true - confusor))

    def direction(score_of) -> float:
        # score_of(anchor, other): the score of anchor's confusor `other`
        per_anchor = []
        for a in range(b):
            hinges = [
                hinge(scores[a, a], score_of(a, o))
                for o in range(b)
                if image_ids[o] != image_ids[a]
            ]
            if hinges:
                per_anchor.append(hinges)
        if violation == "sum":
            return float(np.mean([h for hs in per_anchor for h in hs]))
        return float(np.mean([max(hs) for hs in per_anchor]))

    loss = direction(lambda a, o: scores[a, o])  # caption a, confusor image o
    if both_directions:
        loss = (loss + direction(lambda a, o: scores[o, a])) / 2  # image a, confusor caption o
    return loss
