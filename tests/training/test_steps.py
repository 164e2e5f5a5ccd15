"""Tests of `capstone.training.steps`: the course step's loss and gradients vs NumPy, the SGD
update, and the memory estimate of a step vs its measured peak."""

from __future__ import annotations

import mygrad as mg
import numpy as np
import pytest
from gradcheck import numerical_grad
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from mynn.optimizers.sgd import SGD

from capstone.embeddings.image import ImageEmbedder
from capstone.training.optimizers import make_optimizer
from capstone.training.recipes import TrainConfig
from capstone.training.steps import in_batch_step, step_memory, train_step


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ------------------------------------------------------------------------- NumPy reference loss


def numpy_loss(W, captions, x_true, x_conf, margin):
    """mean(max(0, margin - (s_true - s_conf))), s = <caption, unit(x W)>; and the accuracy."""
    s_true = np.sum(captions * unit(x_true @ W), axis=1)
    s_conf = np.sum(captions * unit(x_conf @ W), axis=1)
    return np.mean(np.maximum(0, margin - (s_true - s_conf))), np.mean(s_true > s_conf)


def numpy_grad(W, captions, x_true, x_conf, margin):
    """Analytic d(loss)/dW: d<c, y/|y|>/dy = (c - s y/|y|) / |y|."""
    b = len(captions)
    y_true, y_conf = x_true @ W, x_conf @ W
    n_true = np.linalg.norm(y_true, axis=1, keepdims=True)
    n_conf = np.linalg.norm(y_conf, axis=1, keepdims=True)
    s_true = np.sum(captions * y_true / n_true, axis=1, keepdims=True)
    s_conf = np.sum(captions * y_conf / n_conf, axis=1, keepdims=True)
    active = ((margin - (s_true - s_conf)) > 0).astype(np.float64)
    dy_true = -active / b * (captions - s_true * y_true / n_true) / n_true
    dy_conf = active / b * (captions - s_conf * y_conf / n_conf) / n_conf
    return x_true.T @ dy_true + x_conf.T @ dy_conf


def random_batch(rng, b=8, d=4, d_in=6):
    captions = unit(rng.normal(size=(b, d)))
    return captions, rng.normal(size=(b, d_in)), rng.normal(size=(b, d_in))


class GradRecorder:
    """Stands in for the optimizer: records W.grad when `step` is called, leaves W alone."""

    def __init__(self, weight):
        self.weight = weight
        self.grad = None

    def step(self):
        self.grad = np.array(self.weight.grad)


def float64_model(d=4, d_in=6, seed=0) -> ImageEmbedder:
    model = ImageEmbedder(d, d_in=d_in, seed=seed)
    model.weight.data = model.weight.data.astype(np.float64)
    return model


# ----------------------------------------------------------------------------------- train_step


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), margin=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 2.5]))
def test_train_step_gradient_matches_central_differences(seed, margin):
    rng = np.random.default_rng(seed)
    model = float64_model(seed=int(rng.integers(1000)))
    captions, x_true, x_conf = random_batch(rng)
    W = model.weight.data.copy()
    s_diff = np.sum(captions * (unit(x_true @ W) - unit(x_conf @ W)), axis=1)
    assume(np.min(np.abs(margin - s_diff)) > 1e-4)  # no row on the hinge's kink

    recorder = GradRecorder(model.weight)
    loss, accuracy = train_step(model, recorder, captions, x_true, x_conf, margin)

    expected_loss, expected_accuracy = numpy_loss(W, captions, x_true, x_conf, margin)
    assert loss == pytest.approx(expected_loss, rel=1e-12, abs=1e-15)
    assert accuracy == expected_accuracy
    np.testing.assert_array_equal(model.weight.data, W)  # the recorder does not step

    numerical = numerical_grad(lambda w: numpy_loss(w, captions, x_true, x_conf, margin)[0], W)
    np.testing.assert_allclose(recorder.grad, numerical, rtol=1e-5, atol=1e-9)
    # ... and so does the analytic reference used by the optimizer tests below
    np.testing.assert_allclose(
        numpy_grad(W, captions, x_true, x_conf, margin), numerical, rtol=1e-5, atol=1e-9
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), margin=st.sampled_from([0.1, 0.25, 1.0]))
def test_train_step_gradient_of_the_text_map_matches_central_differences(seed, margin):
    # The course's triples with a learned text map: both W and T get their gradients.
    rng = np.random.default_rng(seed)
    model = float64_model(seed=int(rng.integers(1000)))
    model.text_map = mg.tensor(np.eye(4) + 0.3 * rng.normal(size=(4, 4)))
    captions, x_true, x_conf = random_batch(rng)
    W, T = model.weight.data.copy(), model.text_map.data.copy()

    def loss_of(w, t):
        return numpy_loss(w, unit(captions @ t), x_true, x_conf, margin)[0]

    s_diff = np.sum(unit(captions @ T) * (unit(x_true @ W) - unit(x_conf @ W)), axis=1)
    assume(np.min(np.abs(margin - s_diff)) > 1e-4)  # no row on the hinge's kink
    recorder = GradRecorder(model.text_map)
    loss, _ = train_step(model, recorder, captions, x_true, x_conf, margin)
    assert loss == pytest.approx(loss_of(W, T), rel=1e-12)
    np.testing.assert_allclose(
        recorder.grad, numerical_grad(lambda t: loss_of(W, t), T), rtol=1e-5, atol=1e-9
    )
    np.testing.assert_allclose(
        model.weight.grad, numerical_grad(lambda w: loss_of(w, T), W), rtol=1e-5, atol=1e-9
    )


def test_train_step_gradient_is_zero_when_every_margin_is_met():
    rng = np.random.default_rng(0)
    model = float64_model()
    captions, x_true, _ = random_batch(rng)
    # The confusor is the true image itself: s_true - s_conf = 0 < margin for every row...
    recorder = GradRecorder(model.weight)
    loss, accuracy = train_step(model, recorder, captions, x_true, x_true.copy(), 0.25)
    assert loss == pytest.approx(0.25) and accuracy == 0.0  # ties are not successes
    # ... and with margin 0 the loss and its gradient vanish.
    loss, _ = train_step(model, recorder, captions, x_true, x_true.copy(), 0.0)
    assert loss == 0.0
    np.testing.assert_array_equal(recorder.grad, np.zeros_like(recorder.grad))


def test_train_step_float32_model_matches_float64_reference():
    # As in training: float32 weights and descriptors, float64 caption embeddings.
    rng = np.random.default_rng(1)
    model = ImageEmbedder(16, d_in=40, seed=3)
    captions, x_true, x_conf = random_batch(rng, b=32, d=16, d_in=40)
    x_true, x_conf = x_true.astype(np.float32), x_conf.astype(np.float32)
    W = model.weight.data.astype(np.float64)
    recorder = GradRecorder(model.weight)
    loss, _ = train_step(model, recorder, captions, x_true, x_conf, 0.25)
    assert recorder.grad.dtype == np.float32
    assert loss == pytest.approx(numpy_loss(W, captions, x_true, x_conf, 0.25)[0], rel=1e-5)
    expected = numpy_grad(W, captions, x_true.astype(np.float64), x_conf.astype(np.float64), 0.25)
    np.testing.assert_allclose(recorder.grad, expected, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_sgd_momentum_steps_match_numpy(momentum):
    rng = np.random.default_rng(2)
    model = float64_model(d=5, d_in=7)
    optimizer = SGD(model.parameters, learning_rate=0.3, momentum=momentum)
    W = model.weight.data.copy()
    v = np.zeros_like(W)
    for _ in range(4):
        batch = random_batch(rng, b=6, d=5, d_in=7)
        g = numpy_grad(W, *batch, margin=0.5)
        assert np.abs(g).max() > 1e-3  # a step that actually moves
        v = momentum * v - 0.3 * g
        W = W + v
        train_step(model, optimizer, *batch, 0.5)
        np.testing.assert_allclose(model.weight.data, W, rtol=1e-10, atol=1e-12)
    if momentum:
        np.testing.assert_allclose(optimizer.param_moments[0], v, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------- a step's memory


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(recipe="vse++", epochs=2),  # warm-up: the sum over all confusors, both ways
        TrainConfig(recipe="vse++", epochs=2, warmup_epochs=0, both_directions=False),
        TrainConfig(recipe="vse0", both_directions=False),
        TrainConfig(recipe="course"),
    ],
)
def test_step_memory_bounds_the_measured_peak(config):
    """The estimate is at least tracemalloc's peak of a real step, and at most twice it."""
    import tracemalloc

    b, d, d_in = 768, 50, 512
    rng = np.random.default_rng(0)
    model = ImageEmbedder(d, d_in=d_in, seed=0, text_map=config.text_map)
    optimizer = make_optimizer(config.optimizer, model.parameters,
                               learning_rate=1e-3, momentum=config.momentum)  # fmt: skip
    captions = unit(rng.normal(size=(b, d))).astype(np.float32)
    descriptors = rng.normal(size=(b, d_in)).astype(np.float32)
    peaks = []
    for epoch in range(1, config.epochs + 1):
        tracemalloc.start()
        if config.recipe == "course":
            train_step(model, optimizer, captions, descriptors, descriptors[::-1].copy(), 0.2)
        else:
            in_batch_step(model, optimizer, captions, descriptors, rng.integers(0, 200, b), 0.2,
                          violation=config.violation(epoch),
                          both_directions=config.both_directions)  # fmt: skip
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    estimate = step_memory(config, b, d, d_in)
    assert max(peaks) <= estimate <= 2 * max(peaks)
