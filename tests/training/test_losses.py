"""Tests of `capstone.training.losses`: the in-batch loss vs enumerated triples; its gradient."""

from __future__ import annotations

import math

import mygrad as mg
import numpy as np
import pytest
from gradcheck import numerical_grad
from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.embeddings.image import unit_rows
from capstone.training.losses import confusable, in_batch_loss, in_batch_loss_reference


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@st.composite
def batches(draw, max_b=8):
    """B captions, their B true images (unit vectors) and image ids with repeats."""
    b = draw(st.integers(1, max_b))
    d = draw(st.integers(1, 4))
    ids = np.array(draw(st.lists(st.integers(0, b), min_size=b, max_size=b)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return unit(rng.normal(size=(b, d))), unit(rng.normal(size=(b, d))), ids


VIOLATION = st.sampled_from(["sum", "max"])
MARGIN = st.sampled_from([0.0, 0.1, 0.25, 1.0, 2.5])


@settings(max_examples=300, deadline=None)
@given(batch=batches(), margin=MARGIN, violation=VIOLATION, both=st.booleans())
def test_loss_is_margin_ranking_loss_over_the_enumerated_triples(batch, margin, violation, both):
    captions, images, ids = batch
    loss, accuracy = in_batch_loss(
        captions, mg.tensor(images), ids, margin, violation=violation, both_directions=both
    )
    if not confusable(ids).any():  # every row the same image: no triple
        assert loss.item() == 0.0 and math.isnan(accuracy)
        return
    expected = in_batch_loss_reference(
        captions, images, ids, margin, violation=violation, both_directions=both
    )
    assert loss.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # accuracy: of every (caption, confusor image) triple, the true image scores higher
    scores = captions @ images.T
    triples = [(i, j) for i in range(len(ids)) for j in range(len(ids)) if ids[i] != ids[j]]
    assert accuracy == np.mean([scores[i, i] > scores[i, j] for i, j in triples])


def test_sum_and_max_by_hand():
    # captions are the axes, so S[i, j] is coordinate i of image j:
    #   S = [[0.8, 0.6, 0.0], [0.6, 0.0, 0.6], [0.0, 0.8, 0.8]], true scores 0.8, 0.0, 0.8
    images = np.array([[0.8, 0.6, 0.0], [0.6, 0.0, 0.8], [0.0, 0.6, 0.8]])
    captions, ids = np.eye(3), np.array([10, 11, 12])
    # hinges 0.25 - S[i, i] + S[i, j]: caption 0: 0.05, 0; caption 1: 0.85, 0.85; caption 2: 0, 0.25
    total, _ = in_batch_loss(captions, mg.tensor(images), ids, 0.25, violation="sum")
    assert total.item() == pytest.approx((0.05 + 0.85 + 0.85 + 0.25) / 6)
    # the hardest confusor of each caption: 0.05, 0.85, 0.25
    hardest, _ = in_batch_loss(captions, mg.tensor(images), ids, 0.25, violation="max")
    assert hardest.item() == pytest.approx((0.05 + 0.85 + 0.25) / 3)


def test_reference_defaults_are_in_batch_losss():
    # Both default to the mean hinge of the caption -> image direction. The by-hand batch with
    # margin 0.1: hinges 0, 0 (caption 0), 0.7, 0.7 (caption 1), 0, 0.1 (caption 2); the max
    # violation (0.8 / 3) and both directions (0.2583) differ.
    images = np.array([[0.8, 0.6, 0.0], [0.6, 0.0, 0.8], [0.0, 0.6, 0.8]])
    captions, ids = np.eye(3), np.array([10, 11, 12])
    loss, _ = in_batch_loss(captions, mg.tensor(images), ids, 0.1)
    reference = in_batch_loss_reference(captions, images, ids, 0.1)
    assert reference == pytest.approx(loss.item())
    assert reference == pytest.approx((0.7 + 0.7 + 0.1) / 6)


def test_captions_of_one_image_are_never_each_others_confusors():
    # Rows 0 and 1 are two captions of image 7. Row 1's image vector matches caption 0 best
    # of all: as a confusor it would be caption 0's hardest; it must not count at all.
    captions = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    images = np.array([[0.8, 0.6], [1.0, 0.0], [0.0, 1.0]])
    ids = np.array([7, 7, 9])
    for violation in ("sum", "max"):
        loss, _ = in_batch_loss(captions, mg.tensor(images), ids, 0.5, violation=violation)
        # only (0, 2), (1, 2), (2, 0), (2, 1) are triples; by hand, with S = captions @ images.T
        s = captions @ images.T
        hinge = {
            (i, j): max(0.0, 0.5 - s[i, i] + s[i, j]) for i, j in [(0, 2), (1, 2), (2, 0), (2, 1)]
        }
        if violation == "sum":
            expected = np.mean(list(hinge.values()))
        else:
            expected = np.mean([hinge[0, 2], hinge[1, 2], max(hinge[2, 0], hinge[2, 1])])
        assert loss.item() == pytest.approx(expected)


def test_max_violation_gradient_reaches_only_the_hardest_confusor():
    # The by-hand batch with margin 1: both confusors of caption 0 violate it (hinges 0.8 for
    # image 1 and 0.2 for image 2), but only the hardest, image 1, pulls on caption 0.
    v = np.array([[0.8, 0.6, 0.0], [0.6, 0.0, 0.8], [0.0, 0.6, 0.8]])
    ids = np.array([0, 1, 2])
    captions = mg.tensor(np.eye(3))
    loss, _ = in_batch_loss(captions, mg.tensor(v), ids, 1.0, violation="max")
    loss.backward()
    np.testing.assert_allclose(captions.grad[0], (v[1] - v[0]) / 3)
    # the sum pulls on caption 0 from both
    captions = mg.tensor(np.eye(3))
    loss, _ = in_batch_loss(captions, mg.tensor(v), ids, 1.0, violation="sum")
    loss.backward()
    np.testing.assert_allclose(captions.grad[0], ((v[1] - v[0]) + (v[2] - v[0])) / 6)


def test_confusable_examples():
    assert confusable(np.array([3])).tolist() == [[False]]
    assert confusable(np.array([1, 2])).tolist() == [[False, True], [True, False]]


def test_bad_violation():
    with pytest.raises(
        ValueError, match=r"`violation` must be one of \('sum', 'max'\), got 'mean'"
    ):
        in_batch_loss(np.eye(2), mg.tensor(np.eye(2)), np.array([0, 1]), 0.1, violation="mean")


# -------------------------------------------------------------------------------------- gradient


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    margin=st.sampled_from([0.1, 0.25, 1.0]),
    violation=VIOLATION,
    both=st.booleans(),
)
def test_gradients_of_image_map_and_text_map_match_central_differences(
    seed, margin, violation, both
):
    # The whole differentiable path of an in-batch step: unit(x W) for images, unit(c T) for
    # captions, then the loss; W and T in float64.
    rng = np.random.default_rng(seed)
    b, d, d_in = 6, 3, 5
    ids = rng.integers(0, 4, size=b)
    captions, x = unit(rng.normal(size=(b, d))), rng.normal(size=(b, d_in))
    W0, T0 = rng.normal(size=(d_in, d)), np.eye(d) + 0.3 * rng.normal(size=(d, d))

    def loss_of(W, T):
        return in_batch_loss_reference(
            unit(captions @ T), unit(x @ W), ids, margin, violation=violation, both_directions=both
        )

    W, T = mg.tensor(W0), mg.tensor(T0)
    loss, _ = in_batch_loss(
        unit_rows(mg.matmul(captions, T)),
        unit_rows(mg.matmul(x, W)),
        ids,
        margin,
        violation=violation,
        both_directions=both,
    )
    loss.backward()
    if not confusable(ids).any():
        return
    np.testing.assert_allclose(
        W.grad, numerical_grad(lambda w: loss_of(w, T0), W0), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        T.grad, numerical_grad(lambda t: loss_of(W0, t), T0), rtol=1e-5, atol=1e-7
    )
