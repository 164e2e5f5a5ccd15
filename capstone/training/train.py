"""Training: the margin ranking loss on (caption, true image, confusor image) triples, in MyGrad.

For a triple (caption c, true image t, confusor f), with unit vectors

    s_t = <g(c), f(x_t)>,   s_f = <g(c), f(x_f)>
    loss = mean(max(0, margin - (s_t - s_f)))      mygrad.nnet.margin_ranking_loss(s_t, s_f, 1, m)

(f: the image map, g: the text map or the identity; `capstone.embeddings.image`). Recipes
differ in where the confusors come from (`RECIPES`):

- ``course``: one sampled confusor per caption (random or hard, `capstone.training.triples`),
  SGD with momentum: the assignment, reproduced bit for bit;
- ``vse0`` / ``vse++``: every other image of a batch is a confusor; the mean hinge over all,
  or the hardest per caption (`capstone.training.losses`), with Adam.

MyGrad back-propagates the loss, a MyNN optimizer updates the weights. Every epoch draws its
order (and confusors) from a generator seeded by (seed, epoch), so a run is reproducible and
a resumed run continues exactly as the uninterrupted one would have. After each epoch the
weights, the optimizer state, the best weights so far and the history are saved atomically to
``<run>/checkpoint.npz``. With a selection slice (training images held out of the triples),
the epoch whose weights retrieve its images best is kept: the validation images are never
read to choose.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import mygrad as mg
import numpy as np
from mygrad.nnet.losses import margin_ranking_loss
from threadpoolctl import threadpool_limits

from capstone.common.checks import instance
from capstone.common.locks import LOCK_FILE, exclusive
from capstone.common.memory import available_memory
from capstone.common.progress import Progress
from capstone.data.coco import CocoData
from capstone.data.split import split_images
from capstone.dataset import Dataset
from capstone.embeddings.image import ImageEmbedder
from capstone.evaluation.metrics import retrieval_metrics, triple_accuracy
from capstone.training.checkpoint import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    load_checkpoint,
    nothing_to_resume,
    save_checkpoint,
)
from capstone.training.losses import in_batch_loss
from capstone.training.optimizers import make_optimizer
from capstone.training.recipes import TrainConfig
from capstone.training.triples import Triples, make_triples, validation_triples

__all__ = [
    "Setup",
    "TrainResult",
    "TrainingDiverged",
    "check_run_folder",
    "check_step_size",
    "epoch_rows",
    "epoch_steps",
    "hold_out_selection",
    "in_batch_step",
    "setup",
    "step_memory",
    "train",
    "train_step",
]


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


@dataclass
class TrainResult:
    """What `train` returns.

    Attributes
    ----------
    model : ImageEmbedder
        The best epoch's weights when a selection slice picks it, else the last epoch's.
    history : list[dict]
        One record per epoch: epoch, loss, accuracy (training triples), val_accuracy (the
        validation triples, for the plot only), seconds; with a selection slice also
        selection_r1/r5/r10 (its caption -> image recall).
    train_images, val_images : numpy.ndarray
        The image-level split (indices into the data); ``train_images`` includes the
        selection slice.
    selection_images : numpy.ndarray
        The training images held out to pick the best epoch (empty when none).
    best_epoch : int
        The epoch whose weights ``model`` holds.
    path : Path or None
        The saved ``model.npz`` (None without ``run_dir``).

    ``capstone.train`` (`capstone.runs.train`) returns it with ``.run``, the trained model as a
    `capstone.runs.Run`: training sits below runs and does not build one.
    """

    model: ImageEmbedder
    history: list[dict]
    train_images: np.ndarray
    val_images: np.ndarray
    selection_images: np.ndarray
    best_epoch: int
    path: Path | None = None


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


@dataclass
class Setup:
    """What training starts from: the split, fresh weights and their optimizer (`setup`)."""

    model: ImageEmbedder
    optimizer: object
    train_images: np.ndarray
    val_images: np.ndarray
    fit_images: np.ndarray
    selection: np.ndarray


def setup(data: CocoData, caption_embeddings: np.ndarray, config, info=None) -> Setup:
    """The split of ``config``'s seed, the seeded initial model and a fresh optimizer.

    `train` starts from it; so can a benchmark that runs the steps itself (`epoch_steps`).
    The model's info records the settings, the data fingerprint and the validation split as
    COCO ids: a run is evaluated and searched on exactly these images.
    """
    train_images, val_images = split_images(
        data.n_images, val_fraction=config.val_fraction, seed=config.seed
    )
    fit_images, selection = hold_out_selection(train_images, config.select_images, config.seed)
    model = ImageEmbedder(
        caption_embeddings.shape[1],
        d_in=data.descriptors.shape[1],
        seed=config.seed,
        info={
            **(info or {}),
            "data_fingerprint": data.fingerprint,
            "train": asdict(config),
            "val_image_ids": data.image_ids[val_images].tolist(),
        },
        text_map=config.text_map,
    )
    optimizer = make_optimizer(
        config.optimizer,
        model.parameters,
        learning_rate=config.learning_rate,
        momentum=config.momentum,
    )
    return Setup(model, optimizer, train_images, val_images, fit_images, selection)


def hold_out_selection(train_images: np.ndarray, n: int, seed: int):
    """Split ``n`` images (at most a tenth) off the training images, to pick the best epoch.

    Fewer than 2 (too few training images) hold none out: retrieval needs 2 images to rank.

    Returns
    -------
    fit, selection : numpy.ndarray
        Sorted image indices: trained on, and held out of the triples.
    """
    n = min(n, len(train_images) // 10)
    n = n if n >= 2 else 0
    order = np.random.default_rng([seed, 2 << 30]).permutation(train_images)
    return np.sort(order[n:]), np.sort(order[:n])


def epoch_steps(model, optimizer, config, epoch, data, caption_embeddings, fit_images):
    """One epoch's work: (number of triples or captions, ``step(rows)`` for a slice of them).

    `train` calls ``step`` on consecutive slices of ``batch_size``; so can a benchmark that
    pauses between steps. Every epoch draws its order (and the course's confusors) from a
    generator seeded by (seed, epoch): a run is reproducible, and a resumed run continues as
    the uninterrupted one.

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


def train(
    data: CocoData,
    caption_embeddings: np.ndarray,
    config: TrainConfig = TrainConfig(),
    *,
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    info: dict | None = None,
    plot: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train an `ImageEmbedder` on triples from the training images.

    Parameters
    ----------
    data : CocoData
    caption_embeddings : numpy.ndarray, shape (n_captions, d)
        Unit caption embeddings (`capstone.embeddings.text.TextEmbedder.fit`).
    config : TrainConfig
    run_dir : path-like, optional
        Folder for ``checkpoint.npz`` (each epoch) and ``model.npz`` (at the end), held
        for this process while it trains.
    resume : bool
        Continue from ``run_dir``'s checkpoint. Without it, an existing checkpoint is an error
        rather than being overwritten.
    info : dict, optional
        Saved with the model (GloVe source, data fingerprint, ...).
    plot : bool
        Plot loss and accuracy with noggin (`capstone.training.plot`): live with the nbAgg
        backend (``%matplotlib notebook``), else drawn once at the end (``%matplotlib inline``).
    progress : bool
        Print a progress bar and one line per epoch to stderr.

    Returns
    -------
    TrainResult

    Raises
    ------
    TypeError
        An argument of another type, named (`capstone.common.checks.instance`).
    capstone.common.locks.FolderLocked
        If another training holds ``run_dir`` (one writer per run folder).
    TrainingDiverged
        If the loss becomes NaN or infinite (the last good checkpoint stays as it was).
    """
    _check_arguments(data, caption_embeddings, config, run_dir, info)
    if resume and run_dir is None:
        raise nothing_to_resume("no run folder (`run_dir`) given")
    init = setup(data, caption_embeddings, config, info)
    # sizes before any folder is made or step allocated
    check_step_size(
        config, data, caption_embeddings.shape[1], len(epoch_rows(data, init.fit_images))
    )
    kwargs = dict(run_dir=run_dir, resume=resume, plot=plot, progress=progress)
    if run_dir is None:
        return _train(data, caption_embeddings, config, init, **kwargs)
    check_run_folder(run_dir, resume)  # before the lock makes the folder
    with exclusive(run_dir, "a training"):
        # again, held: a training that held it may have ended meanwhile
        if (problem := _folder_problem(Path(run_dir), resume)) is not None:
            raise problem
        return _train(data, caption_embeddings, config, init, **kwargs)


def check_run_folder(run_dir: str | os.PathLike, resume: bool) -> None:
    """Refuse a training into ``run_dir`` that would lose what the folder holds.

    Without ``resume``, an existing checkpoint (resume it instead) or a model that no
    checkpoint continues (copied in, or trained elsewhere) would be replaced; with it, a
    checkpoint must exist. The command line calls this before loading the data. A folder that
    another training holds says so first: its files are that training's, in the making.

    Raises
    ------
    capstone.common.locks.FolderLocked
        If another training holds the folder (and its files would be refused).
    FileExistsError, FileNotFoundError
        Naming the run and the file, and what to do instead.
    """
    problem = _folder_problem(Path(run_dir), resume)
    if problem is None:
        return
    if (Path(run_dir) / LOCK_FILE).exists():
        with exclusive(run_dir):  # FolderLocked while another training holds it
            pass
    raise problem


def _folder_problem(folder: Path, resume: bool) -> Exception | None:
    """What `check_run_folder` refuses, as the error to raise (None: nothing)."""
    checkpoint, model = folder / CHECKPOINT_FILE, folder / MODEL_FILE
    if resume:
        if not checkpoint.is_file():
            return nothing_to_resume(f"{checkpoint} not found")
    elif checkpoint.exists():
        return FileExistsError(
            f"{checkpoint} exists: resume it (--resume) or train into another run folder"
        )
    elif model.exists():
        return FileExistsError(
            f"run {folder.name}: {model} exists and no checkpoint continues it (copied in, or "
            "trained elsewhere): training would replace it. Train into another run "
            "(--run NAME) to keep it"
        )
    return None


def _check_arguments(data, caption_embeddings, config, run_dir, info) -> None:
    """`train`'s arguments, each of its type and the embeddings one row a caption."""
    from_dataset = "pass a Dataset's `.data` (load_dataset() returns a Dataset)"
    instance("data", data, CocoData, hint=from_dataset if isinstance(data, Dataset) else "")
    embedded = "pass a Dataset's `.caption_embeddings` (load_dataset(embed_captions=True))"
    instance("caption_embeddings", caption_embeddings, np.ndarray, hint=embedded)
    from_dict = "TrainConfig(**config) makes one"
    instance("config", config, TrainConfig, hint=from_dict if isinstance(config, dict) else "")
    instance("run_dir", run_dir, (str, os.PathLike, type(None)))
    instance("info", info, (dict, type(None)))
    if caption_embeddings.ndim != 2 or caption_embeddings.shape[0] != data.n_captions:
        raise ValueError(
            f"`caption_embeddings` must have shape (n_captions, d) = ({data.n_captions:,}, d), "
            f"got {caption_embeddings.shape}"
        )


def _train(data, caption_embeddings, config, init: Setup, *, run_dir, resume, plot, progress):
    """`train` from ``init``, its run folder (if any) held: the epoch loop."""
    model, optimizer, selection = init.model, init.optimizer, init.selection
    checkpoint = Path(run_dir) / CHECKPOINT_FILE if run_dir is not None else None
    history: list[dict] = []
    best: dict[str, np.ndarray] = {}
    if resume:  # `check_run_folder` found the checkpoint
        history, best = load_checkpoint(checkpoint, model, optimizer, config)
    val_triples = validation_triples(data, init.val_images, config.seed)
    plotter = _plot(config) if plot else None
    bar = Progress(enabled=progress)

    # Each step's products are tiny (2B x 512 x d): a second BLAS thread costs more in hand-offs
    # than it saves, and ten times more when another process holds the other core.
    with threadpool_limits(limits=1, user_api="blas"):
        for epoch in range(len(history) + 1, config.epochs + 1):
            if config.patience is not None:
                if len(history) - _best_epoch(history, selection) >= config.patience:
                    break
            start = time.perf_counter()
            losses, accuracies = _fit_epoch(
                model, optimizer, config, epoch, data, caption_embeddings, init.fit_images,
                bar=bar, plotter=plotter, checkpoint=checkpoint, epochs_kept=len(history),
            )  # fmt: skip
            record = _epoch_record(
                epoch, losses, accuracies, model, data, caption_embeddings, val_triples,
                selection, config.seed,
            )  # fmt: skip
            record["seconds"] = round(time.perf_counter() - start, 3)
            history.append(record)
            is_best = _best_epoch(history, selection) == epoch
            if is_best:
                best = {name: p.data.copy() for name, p in model.named_parameters.items()}
            bar.finish(_epoch_line(record, config, is_best))
            if plotter is not None:
                plotter.epoch(epoch, record["val_accuracy"], len(val_triples))
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, optimizer, config, history, best)

    if plotter is not None:
        plotter.plot()
    return _result(init, history, best, run_dir)


def _fit_epoch(
    model, optimizer, config, epoch, data, caption_embeddings, fit_images,
    *, bar, plotter, checkpoint, epochs_kept,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One epoch of optimizer steps: the (loss, accuracy) of each batch.

    Raises
    ------
    TrainingDiverged
        At the first non-finite loss; ``checkpoint`` keeps ``epochs_kept`` epochs.
    """
    n, step = epoch_steps(model, optimizer, config, epoch, data, caption_embeddings, fit_images)
    n_batches = -(-n // config.batch_size)
    losses, accuracies = np.empty(n_batches), np.empty(n_batches)
    bar.start(f"epoch {epoch}/{config.epochs}", n_batches)
    for i in range(n_batches):
        rows = slice(i * config.batch_size, (i + 1) * config.batch_size)
        losses[i], accuracies[i] = step(rows)
        if not np.isfinite(losses[i]):
            raise TrainingDiverged(
                f"epoch {epoch}, step {i + 1}: the loss is {losses[i]}: training stopped"
                + (
                    f"; {checkpoint} keeps epoch {epochs_kept}, the last good one"
                    if checkpoint is not None and epochs_kept
                    else "; nothing was saved"
                )
                + " (non-finite descriptors, or a learning rate too large?)"
            )
        if plotter is not None:
            plotter.batch(losses[i], accuracies[i], len(range(n)[rows]))
        bar.update(i + 1)
    return losses, accuracies


def _epoch_record(
    epoch, losses, accuracies, model, data, caption_embeddings, val_triples: Triples, selection,
    seed,
) -> dict:  # fmt: skip
    """The history record of an epoch: its mean loss and accuracy, the validation triples'
    accuracy and, with a selection slice, its caption -> image recall (seconds come later)."""
    record = {
        "epoch": epoch,
        "loss": float(losses.mean()),
        "accuracy": float(np.nanmean(accuracies)),
        "val_accuracy": triple_accuracy(model, data, caption_embeddings, val_triples),
    }
    if len(selection):
        metrics = retrieval_metrics(model, data, caption_embeddings, selection, seed=seed)
        record.update(
            selection_r1=metrics.recall_at_1,
            selection_r5=metrics.recall_at_5,
            selection_r10=metrics.recall_at_10,
        )
    return record


def _selection_score(record: dict) -> float:
    return record["selection_r1"] + record["selection_r5"] + record["selection_r10"]


def _best_epoch(history: list[dict], selection: np.ndarray) -> int:
    """The epoch the model keeps: the best on the selection slice (the first of equals), or,
    without one, the last."""
    if not len(selection) or not history:
        return len(history)
    return max(history, key=_selection_score)["epoch"]


def _epoch_line(record: dict, config: TrainConfig, is_best: bool) -> str:
    """The line printed after an epoch."""
    epoch = record["epoch"]
    notes = ""
    if config.violation(epoch) == "sum" and config.recipe == "vse++":
        notes = "  (warm-up: vse0 loss)"
    if "selection_r1" in record:
        # the best epoch is the one with the best R@1 + R@5 + R@10, so show that sum
        notes += (
            f"  selection R@1 {record['selection_r1']:.3f}, "
            f"R@1+5+10 {_selection_score(record):.3f}"
        )
    if is_best and notes:
        notes += " (best)"
    return (
        f"epoch {epoch}/{config.epochs}  loss {record['loss']:.4f}  "
        f"accuracy {record['accuracy']:.3f}  val accuracy {record['val_accuracy']:.3f}"
        f"{notes}  ({record['seconds']:.1f} s)"
    )


def _result(init: Setup, history: list[dict], best: dict, run_dir) -> TrainResult:
    """The model of the best epoch (with a selection slice) or the last, saved in ``run_dir``."""
    model, selection = init.model, init.selection
    chosen = _best_epoch(history, selection)
    if len(selection) and best:
        for name, p in model.named_parameters.items():
            p.data[...] = best[name]
    model.info["history"] = history
    model.info["best_epoch"] = chosen
    path = None
    if run_dir is not None:
        path = model.save(Path(run_dir) / MODEL_FILE, overwrite=True)
    return TrainResult(
        model, history, init.train_images, init.val_images, selection, chosen, path
    )


def _plot(config: TrainConfig):
    """The noggin plot of a training (`capstone.training.plot.TrainingPlot`)."""
    from capstone.training.plot import TrainingPlot  # imports matplotlib: only when wanted

    # the warm-up ends inside the training only when a later epoch takes the max violation
    ends = config.violation(config.epochs) == "max"
    return TrainingPlot(warmup_epochs=config.warmup_epochs if ends else 0)
