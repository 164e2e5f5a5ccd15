"""Training: the epoch loop, its checkpoints and the choice of the epoch kept.

`setup` splits the images (`capstone.data.split`), holds a selection slice of the training
images out of the triples (`hold_out_selection`) and makes the seeded initial model and its
optimizer. `train` then runs the epochs, each the steps of `capstone.training.steps` (the loss
of each recipe and its MyGrad step are stated there) on consecutive batches, with one BLAS
thread. Every epoch draws its order (and confusors) from a generator seeded by (seed, epoch), so
a run is reproducible and a resumed run continues exactly as the uninterrupted one would have.
After each epoch the weights, the optimizer state, the best weights so far and the history are
saved atomically to ``<run>/checkpoint.npz`` (`capstone.training.checkpoint`); a non-finite
loss stops the training and leaves the last good checkpoint as it was (`TrainingDiverged`).
With a selection slice, the epoch whose weights retrieve its images best (R@1 + R@5 + R@10) is
kept: the validation images are never read to choose; ``patience`` stops the training when no
better epoch came for that many epochs.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from capstone.common.checks import instance
from capstone.common.locks import exclusive
from capstone.common.progress import Progress
from capstone.data.coco import CocoData
from capstone.data.split import split_images
from capstone.dataset import Dataset
from capstone.embeddings.image import ImageEmbedder
from capstone.evaluation.metrics import retrieval_metrics, triple_accuracy
from capstone.training.checkpoint import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    check_run_folder,
    load_checkpoint,
    nothing_to_resume,
    run_folder_problem,
    save_checkpoint,
)
from capstone.training.optimizers import make_optimizer
from capstone.training.recipes import TrainConfig
from capstone.training.steps import check_step_size, epoch_rows, epoch_steps
from capstone.training.triples import Triples, validation_triples

__all__ = ["Setup", "TrainResult", "TrainingDiverged", "hold_out_selection", "setup", "train"]


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

    `train` starts from it; so can a benchmark that runs the steps itself
    (`capstone.training.steps.epoch_steps`). The model's info records the settings, the data
    fingerprint and the validation split as COCO ids: a run is evaluated and searched on
    exactly these images.
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
        if (problem := run_folder_problem(Path(run_dir), resume)) is not None:
            raise problem
        return _train(data, caption_embeddings, config, init, **kwargs)


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
