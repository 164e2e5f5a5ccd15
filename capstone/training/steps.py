"""One optimization step of each recipe, an epoch's steps, and the memory a step needs.

A step computes the loss of B rows in MyGrad, back-propagates it, and a MyNN optimizer updates
the weights (`capstone.training.optimizers`). With f the image map and g the text map or the
identity (`capstone.embeddings.image`), both of unit output, `train_step` (the ``course``
recipe) takes B triples (caption c, true image t, confusor k), the assignment's step bit for
bit (`capstone.course_math`)::

    s_t = <g(c), f(x_t)>,   s_k = <g(c), f(x_k)>
    loss = mean(max(0, margin - (s_t - s_k)))      mygrad.nnet.margin_ranking_loss(s_t, s_k, 1, m)
    accuracy = mean(s_t > s_k)

`in_batch_step` (``vse0``, ``vse++``) takes B captions and their true images; every image of
the batch other than caption i's own is a confusor for it (`capstone.training.losses`)::

    S[i, j] = <g(c_i), f(x_j)>,   hinge(i, j) = max(0, margin - (S[i, i] - S[i, j]))
    loss = mean of hinge(i, j) over every confusor j of every caption i      violation "sum"
    loss = mean over i of hinge(i, j*(i)),   j*(i) = argmax_{j confusor} S[i, j]   violation "max"

and, with ``both_directions``, the mean of that and the image -> caption loss on the same
scores.

`epoch_steps` is an epoch's work: its rows (`epoch_rows`: every caption of the images trained
on, once) in an order, and with confusors, drawn from a generator seeded by (seed, epoch), and
the step on a slice of them. A step of B rows needs about
``B_COST * B^2 + ROW_COST * (d_in + d) * B`` bytes (`step_memory`); `check_step_size` refuses
a batch that would not fit before anything is allocated.
"""

from __future__ import annotations

import warnings

import mygrad as mg
import numpy as np
from mygrad.nnet.losses import margin_ranking_loss

from capstone.common.memory import available_memory
from capstone.data.coco import CocoData
from capstone.embeddings.image import ImageEmbedder
from capstone.training.losses import in_batch_loss
from capstone.training.recipes import TrainConfig
from capstone.training.triples import make_triples

__all__ = [
    "B_COST",
    "ROW_COST",
    "check_step_size",
    "epoch_rows",
    "epoch_steps",
    "in_batch_step",
    "step_memory",
    "train_step",
]


def train_step(
    model: ImageEmbedder,
    optimizer,
    captions: np.ndarray,
    true_descriptors: np.ndarray,
    confusor_descriptors: np.ndarray,
    margin: float,
) -> tuple[float, float]:
    """One step of the course recipe on B triples; returns (loss, accuracy) of the batch.

    The loss is the mean of `capstone.course_math.margin_ranking_loss` over the triples, the
    accuracy their `capstone.course_math.triple_accuracy`.

    Parameters
    ----------
    captions : numpy.ndarray, shape (B, d)
        Caption embeddings (constants).
    true_descriptors, confusor_descriptors : numpy.ndarray, shape (B, 512)
    """
    b = len(captions)
    # MyGrad's memory guard (locking the arrays a graph uses) costs ~10% of a step; nothing
    # here writes to them while the graph exists (the optimizer updates after backward).
    with mg.mem_guard_off:
        # One forward pass for true and confusor images: half the MyGrad operations.
        images = model(np.concatenate([true_descriptors, confusor_descriptors]))
        text = model.text(captions)
        sims = mg.einsum("nd,nd->n", mg.concatenate([text, text]), images)
        sim_true, sim_confusor = sims[:b], sims[b:]
        loss = margin_ranking_loss(sim_true, sim_confusor, 1, margin)
        loss.backward()
    optimizer.step()
    return float(loss.item()), float(np.mean(sim_true.data > sim_confusor.data))


def in_batch_step(
    model: ImageEmbedder,
    optimizer,
    captions: np.ndarray,
    descriptors: np.ndarray,
    image_ids: np.ndarray,
    margin: float,
    *,
    violation: str,
    both_directions: bool,
) -> tuple[float, float]:
    """One step of an in-batch recipe on B captions and their true images (`in_batch_loss`).

    Parameters
    ----------
    captions : numpy.ndarray, shape (B, d)
    descriptors : numpy.ndarray, shape (B, 512)
        Row i: caption i's image (an image appears once per caption of it in the batch).
    image_ids : numpy.ndarray, shape (B,)
    """
    with mg.mem_guard_off:  # as in `train_step`
        loss, accuracy = in_batch_loss(
            model.text(captions),
            model(descriptors),
            image_ids,
            margin,
            violation=violation,
            both_directions=both_directions,
        )
        loss.backward()
    optimizer.step()
    return float(loss.item()), accuracy


def epoch_steps(model, optimizer, config, epoch, data, caption_embeddings, fit_images):
    """One epoch's work: (number of triples or captions, ``step(rows)`` for a slice of them).

    `capstone.training.train.train` calls ``step`` on consecutive slices of ``batch_size``; so
    can a benchmark that pauses between steps. Every epoch draws its order (and the course's
    confusors) from a generator seeded by (seed, epoch): a run is reproducible, and a resumed
    run continues as the uninterrupted one.

    Parameters
    ----------
    model : ImageEmbedder
    optimizer : MyNN optimizer over ``model.parameters``
    config : TrainConfig
    epoch : int
        1-based.
    data : CocoData
    caption_embeddings : numpy.ndarray, shape (n_captions, d)
    fit_images : numpy.ndarray
        The images trained on (the training images less the selection slice).

    Returns
    -------
    n : int
    step : callable
        ``step(rows: slice) -> (loss, accuracy)``: one optimizer step on those rows.
    """
    rng = np.random.default_rng([config.seed, epoch])
    if config.recipe == "course":
        triples = make_triples(
            data,
            fit_images,
            rng,
            caption_embeddings=caption_embeddings,
            hard_fraction=config.hard_fraction,
            n_candidates=config.n_candidates,
        )
        triples = triples.take(rng.permutation(len(triples)))

        def course_step(rows: slice) -> tuple[float, float]:
            batch = triples.take(rows)
            return train_step(
                model,
                optimizer,
                caption_embeddings[batch.caption],
                data.descriptors[batch.true_image],
                data.descriptors[batch.confusor],
                config.margin,
            )

        return len(triples), course_step

    # In-batch recipes: every caption of the training images once, in random order.
    captions = rng.permutation(epoch_rows(data, fit_images))
    violation = config.violation(epoch)

    def in_batch(rows: slice) -> tuple[float, float]:
        images = data.caption_image[captions[rows]]
        return in_batch_step(
            model,
            optimizer,
            caption_embeddings[captions[rows]],
            data.descriptors[images],
            data.image_ids[images],
            config.margin,
            violation=violation,
            both_directions=config.both_directions,
        )

    return len(captions), in_batch


def epoch_rows(data: CocoData, fit_images: np.ndarray) -> np.ndarray:
    """The captions an epoch goes over: every caption of the images trained on, once.

    The course recipe makes one triple of each (`capstone.training.triples.make_triples`), the
    in-batch recipes take them in batches: either way an epoch has ``len(epoch_rows)`` rows.
    """
    return np.flatnonzero(np.isin(data.caption_image, fit_images))


#: Bytes of one training step of B rows: ``B_COST * B^2 + ROW_COST * (d_in + d) * B``. The
#: in-batch losses hold (B, B) scores, masks and triple indices: peaks of 116 B^2 (the sum over
#: all confusors, both directions), 52 B^2 (one direction) and 13.4 B^2 (max violation alone),
#: plus ~1.3 kB a row at d_in + d = 562, measured with tracemalloc; the course recipe's step is
#: linear (~10 kB a triple: its true and confusor descriptors and their gradients).
B_COST = {("sum", True): 128, ("sum", False): 60, ("max", True): 16, ("max", False): 16}
ROW_COST = {"course": 20, "in-batch": 4}


def step_memory(config: TrainConfig, batch: int, d: int, d_in: int) -> int:
    """Estimated peak bytes of one step of ``batch`` rows (the largest of its epochs' losses).

    >>> step_memory(TrainConfig(recipe="vse0"), 1000, 50, 512) / 1e6  # 128 B^2 + 4 * 562 B
    130.248
    """
    quadratic, per_row = 0, ROW_COST["course" if config.recipe == "course" else "in-batch"]
    if config.recipe != "course":
        epochs = range(1, min(config.epochs, 1 + config.warmup_epochs) + 1)  # warm-up, then on
        losses = {config.violation(epoch) for epoch in epochs}
        quadratic = max(B_COST[loss, config.both_directions] for loss in losses)
    return quadratic * batch**2 + per_row * (d_in + d) * batch


def check_step_size(config: TrainConfig, data: CocoData, d: int, n_rows: int) -> None:
    """Refuse a batch whose step would not fit in memory, before anything is allocated.

    A ``batch_size`` above the ``n_rows`` rows of an epoch takes all of them in one step (a
    note says so); a step whose `step_memory` exceeds what the system has available is an
    error naming ``--batch-size``, the rows and the largest batch that fits.

    Raises
    ------
    ValueError
    """
    what = "training triples" if config.recipe == "course" else "training captions"
    batch = min(config.batch_size, n_rows)
    if config.batch_size > n_rows:
        warnings.warn(
            f"`batch_size` (--batch-size) {config.batch_size:,} is more than the {n_rows:,} "
            f"{what}: each epoch is one step of all of them",
            stacklevel=3,
        )
    d_in = data.descriptors.shape[1]
    need, have = step_memory(config, batch, d, d_in), available_memory()
    if have is None or need <= have:
        return
    fits = 1
    while step_memory(config, 2 * fits, d, d_in) <= have:
        fits *= 2
    raise ValueError(
        f"`batch_size` (--batch-size) {config.batch_size:,}: a step of {batch:,} {what} "
        f"needs about {need / 1e9:,.1f} GB of memory ({config.recipe}), and {have / 1e9:.1f} GB "
        f"is available: choose --batch-size {fits:,} or less"
    )
