"""Training: SGD with momentum on the margin ranking loss, in MyGrad.

For a batch of B triples (caption c, true image t, confusor f), with unit vectors

    s_t = <emb(c), f(x_t)>,   s_f = <emb(c), f(x_f)>
    loss = mean(max(0, margin - (s_t - s_f)))      mygrad.nnet.margin_ranking_loss(s_t, s_f, 1, m)

MyGrad back-propagates the loss to W, MyNN's SGD updates it. Every epoch draws fresh confusors
from a generator seeded by (seed, epoch), so a run is reproducible and a resumed run continues
exactly as the uninterrupted one would have. After each epoch the weights, the optimizer's
momentum and the history are saved atomically to ``<run>/checkpoint.npz``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import mygrad as mg
import numpy as np
from mygrad.nnet.losses import margin_ranking_loss
from mynn.optimizers.sgd import SGD
from threadpoolctl import threadpool_limits

from capstone.archive import load_archive, save_archive
from capstone.coco import CocoData
from capstone.evaluate import triple_accuracy
from capstone.model import ImageEmbedder
from capstone.progress import Progress
from capstone.triples import make_triples, split_images, validation_triples

__all__ = ["CHECKPOINT_KIND", "TrainConfig", "TrainResult", "train", "train_step"]

CHECKPOINT_KIND = "capstone.checkpoint"


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters; the defaults are the course's recommendations.

    Attributes
    ----------
    epochs : int
        Passes over all training captions.
    batch_size : int
        Triples per SGD step (course: 32).
    learning_rate, momentum : float
        SGD (course: 1e-3, 0.9).
    margin : float
        Of the margin ranking loss (course: 0.25).
    hard_fraction : float
        Fraction of triples with a hard confusor (0: all random, 1: all hard).
    n_candidates : int
        Candidate images per hard confusor.
    val_fraction : float
        Fraction of images held out for validation (course: 1/5).
    seed : int
        Seeds the split, the initial weights, and every epoch's confusors and order.
    """

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    momentum: float = 0.9
    margin: float = 0.25
    hard_fraction: float = 0.0
    n_candidates: int = 5
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size", "n_candidates"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer, got {self.seed!r}")
        checks = {
            "learning_rate": 0 < self.learning_rate,
            "momentum": 0 <= self.momentum < 1,
            "margin": 0 <= self.margin,
            "hard_fraction": 0 <= self.hard_fraction <= 1,
            "val_fraction": 0 < self.val_fraction < 1,
        }
        for name, ok in checks.items():
            if not ok or not np.isfinite(getattr(self, name)):
                raise ValueError(f"`{name}` is out of range: {getattr(self, name)!r}")


@dataclass
class TrainResult:
    """What `train` returns.

    Attributes
    ----------
    model : ImageEmbedder
    history : list[dict]
        One record per epoch: epoch, loss, accuracy (training triples), val_accuracy, seconds.
    train_images, val_images : numpy.ndarray
        The image-level split (indices into the data).
    """

    model: ImageEmbedder
    history: list[dict]
    train_images: np.ndarray
    val_images: np.ndarray


def train_step(
    model: ImageEmbedder,
    optimizer: SGD,
    captions: np.ndarray,
    true_descriptors: np.ndarray,
    confusor_descriptors: np.ndarray,
    margin: float,
) -> tuple[float, float]:
    """One SGD step on a batch of B triples; returns (loss, accuracy) of the batch.

    Parameters
    ----------
    captions : numpy.ndarray, shape (B, d)
        Caption embeddings (constants).
    true_descriptors, confusor_descriptors : numpy.ndarray, shape (B, 512)
    """
    b = len(captions)
    # MyGrad's memory guard (locking the arrays a graph uses) costs ~10% of a step; nothing
    # here writes to them while the graph exists (SGD updates W after backward clears it).
    with mg.mem_guard_off:
        # One forward pass for true and confusor images: half the MyGrad operations.
        images = model(np.concatenate([true_descriptors, confusor_descriptors]))
        sims = mg.einsum("nd,nd->n", np.concatenate([captions, captions]), images)
        sim_true, sim_confusor = sims[:b], sims[b:]
        loss = margin_ranking_loss(sim_true, sim_confusor, 1, margin)
        loss.backward()
    optimizer.step()
    return float(loss.item()), float(np.mean(sim_true.data > sim_confusor.data))


def _save_checkpoint(path: Path, model, optimizer, config, history) -> None:
    # MyNN's SGD keeps no moments when momentum is 0: save zeros then.
    moments = optimizer.param_moments or [np.zeros_like(model.weight.data)]
    save_archive(
        path,
        {"weight": model.weight.data, "momentum": moments[0]},
        {"config": asdict(config), "history": history, "info": model.info},
        kind=CHECKPOINT_KIND,
        overwrite=True,
    )


def _resume(path: Path, model, optimizer, config) -> list[dict]:
    arrays, meta = load_archive(path, kind=CHECKPOINT_KIND, required=("weight", "momentum"))
    saved = meta.get("config", {})
    # epochs may grow on resume; everything else must match or the run would not be the same.
    differ = [
        f.name
        for f in fields(TrainConfig)
        if f.name != "epochs" and saved.get(f.name) != getattr(config, f.name)
    ]
    if differ:
        raise ValueError(
            f"{path}: cannot resume with different settings: "
            + ", ".join(f"{n} was {saved.get(n)!r}, now {getattr(config, n)!r}" for n in differ)
        )
    if arrays["weight"].shape != model.weight.shape:
        raise ValueError(
            f"{path}: checkpoint weight has shape {arrays['weight'].shape}, "
            f"the model needs {model.weight.shape}"
        )
    model.weight.data[...] = arrays["weight"]
    if optimizer.param_moments:
        optimizer.param_moments[0][...] = arrays["momentum"]
    return list(meta.get("history", []))


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
        Unit caption embeddings (`capstone.text.TextEmbedder.fit`).
    config : TrainConfig
    run_dir : path-like, optional
        Folder for ``checkpoint.npz`` (each epoch) and ``model.npz`` (at the end).
    resume : bool
        Continue from ``run_dir``'s checkpoint. Without it, an existing checkpoint is an error
        rather than being overwritten.
    info : dict, optional
        Saved with the model (GloVe source, data fingerprint, ...).
    plot : bool
        Show a live noggin plot of loss and accuracy (in a notebook).
    progress : bool
        Print a progress bar and one line per epoch to stderr.

    Returns
    -------
    TrainResult
    """
    if caption_embeddings.shape[0] != data.n_captions:
        raise ValueError(
            f"`caption_embeddings` has {caption_embeddings.shape[0]} rows for "
            f"{data.n_captions} captions"
        )
    train_images, val_images = split_images(
        data.n_images, val_fraction=config.val_fraction, seed=config.seed
    )
    model = ImageEmbedder(
        caption_embeddings.shape[1],
        d_in=data.descriptors.shape[1],
        seed=config.seed,
        info={**(info or {}), "train": asdict(config)},
    )
    optimizer = SGD(model.parameters, learning_rate=config.learning_rate, momentum=config.momentum)
    history: list[dict] = []
    checkpoint = Path(run_dir) / "checkpoint.npz" if run_dir is not None else None
    if checkpoint is not None and checkpoint.exists():
        if not resume:
            raise FileExistsError(
                f"{checkpoint} exists: resume it (--resume) or train into another run folder"
            )
        history = _resume(checkpoint, model, optimizer, config)
    elif resume:
        raise FileNotFoundError(f"nothing to resume: {checkpoint or 'no run folder'} not found")

    val_triples = validation_triples(data, val_images, config.seed)
    plotter = _noggin_plot() if plot else None
    bar = Progress(enabled=progress)

    # Each step's products are tiny (2B x 512 x d): a second BLAS thread costs more in hand-offs
    # than it saves, and ten times more when another process holds the other core.
    with threadpool_limits(limits=1, user_api="blas"):
        for epoch in range(len(history) + 1, config.epochs + 1):
            start = time.perf_counter()
            rng = np.random.default_rng([config.seed, epoch])
            triples = make_triples(
                data,
                train_images,
                rng,
                caption_embeddings=caption_embeddings,
                hard_fraction=config.hard_fraction,
                n_candidates=config.n_candidates,
            )
            triples = triples.take(rng.permutation(len(triples)))
            n_batches = -(-len(triples) // config.batch_size)
            losses, accuracies = np.empty(n_batches), np.empty(n_batches)
            bar.start(f"epoch {epoch}/{config.epochs}", n_batches)
            for i in range(n_batches):
                batch = triples.take(slice(i * config.batch_size, (i + 1) * config.batch_size))
                losses[i], accuracies[i] = train_step(
                    model,
                    optimizer,
                    caption_embeddings[batch.caption],
                    data.descriptors[batch.true_image],
                    data.descriptors[batch.confusor],
                    config.margin,
                )
                if plotter is not None:
                    plotter.set_train_batch(
                        {"loss": losses[i], "accuracy": accuracies[i]}, batch_size=len(batch)
                    )
                bar.update(i + 1)
            val_accuracy = triple_accuracy(model, data, caption_embeddings, val_triples)
            record = {
                "epoch": epoch,
                "loss": float(losses.mean()),
                "accuracy": float(accuracies.mean()),
                "val_accuracy": val_accuracy,
                "seconds": round(time.perf_counter() - start, 3),
            }
            history.append(record)
            bar.finish(
                f"epoch {epoch}/{config.epochs}  loss {record['loss']:.4f}  "
                f"accuracy {record['accuracy']:.3f}  val accuracy {val_accuracy:.3f}  "
                f"({record['seconds']:.1f} s)"
            )
            if plotter is not None:
                plotter.set_train_epoch()
                plotter.set_test_batch({"accuracy": val_accuracy}, batch_size=len(val_triples))
                plotter.set_test_epoch()
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, config, history)

    if plotter is not None:
        plotter.plot()
    model.info["history"] = history
    if run_dir is not None:
        model.save(Path(run_dir) / "model.npz", overwrite=True)
    return TrainResult(model, history, train_images, val_images)


def _noggin_plot():
    from noggin import create_plot  # imports matplotlib: only when a plot is wanted

    plotter, _, _ = create_plot(metrics=["loss", "accuracy"], max_fraction_spent_plotting=0.1)
    return plotter
