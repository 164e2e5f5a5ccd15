"""What a training writes into its run folder: a checkpoint after every epoch, the model at the end.

``<run>/checkpoint.npz`` (`CHECKPOINT_FILE`, an archive of kind `CHECKPOINT_KIND`) holds the
weights, the optimizer state, the best weights so far (``best.<name>``), the settings and the
history: a resumed run continues exactly as the uninterrupted one would have. ``<run>/model.npz``
(`MODEL_FILE`) is the trained model (`capstone.embeddings.image.ImageEmbedder.save`).
A training never replaces what a folder holds unless it continues it (`check_run_folder`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from capstone.common.archive import load_archive, save_archive
from capstone.common.locks import LOCK_FILE, exclusive
from capstone.dataset import run_differences
from capstone.embeddings.image import ImageEmbedder
from capstone.training.optimizers import load_optimizer_state, optimizer_state
from capstone.training.recipes import TrainConfig

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_KIND",
    "MODEL_FILE",
    "RESUMABLE_CHANGES",
    "check_run_folder",
    "load_checkpoint",
    "nothing_to_resume",
    "run_folder_problem",
    "save_checkpoint",
]

MODEL_FILE = "model.npz"
CHECKPOINT_FILE = "checkpoint.npz"
CHECKPOINT_KIND = "capstone.checkpoint"

#: Settings a resumed run may change: it may train longer (and wait longer for a better epoch);
#: any other change would make it another run.
RESUMABLE_CHANGES = ("epochs", "patience")


def nothing_to_resume(where: str) -> FileNotFoundError:
    """The error of a resume without a checkpoint: ``nothing to resume: <where>``.

    ``where`` says what is missing (the checkpoint's path, or no run folder at all).
    """
    return FileNotFoundError(f"nothing to resume: {where}")


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
    problem = run_folder_problem(Path(run_dir), resume)
    if problem is None:
        return
    if (Path(run_dir) / LOCK_FILE).exists():
        with exclusive(run_dir):  # FolderLocked while another training holds it
            pass
    raise problem


def run_folder_problem(folder: Path, resume: bool) -> Exception | None:
    """What `check_run_folder` refuses, as the error to raise (None: nothing).

    `capstone.training.train.train` asks again once it holds the folder: a training that held
    it may have ended meanwhile.
    """
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


def save_checkpoint(
    path: Path,
    model: ImageEmbedder,
    optimizer,
    config: TrainConfig,
    history: list[dict],
    best: dict[str, np.ndarray],
) -> None:
    """Write the state after an epoch to ``path`` atomically (replacing the previous one)."""
    names = list(model.named_parameters)
    state, optimizer_meta = optimizer_state(optimizer, names)
    arrays = {name: p.data for name, p in model.named_parameters.items()}
    arrays.update({f"best.{name}": w for name, w in best.items()})
    save_archive(
        path,
        {**arrays, **state},
        {"config": asdict(config), "history": history, "info": model.info, **optimizer_meta},
        kind=CHECKPOINT_KIND,
        overwrite=True,
    )


def load_checkpoint(
    path: Path, model: ImageEmbedder, optimizer, config: TrainConfig
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Load the checkpoint at ``path`` into ``model`` and ``optimizer``, if it may continue.

    It may when it was written for the same data and word vectors (`run_differences`), with
    the same settings but `RESUMABLE_CHANGES`, for weights of the same shapes, and with fewer
    epochs done than ``config.epochs``.

    Returns
    -------
    history : list[dict]
        The epochs done.
    best : dict[str, numpy.ndarray]
        The best weights so far, by parameter name (empty when no epoch was picked).

    Raises
    ------
    ValueError
        Naming ``path`` and what differs.
    """
    arrays, meta = load_archive(path, kind=CHECKPOINT_KIND)
    saved = meta.get("config", {})
    if "recipe" not in saved:
        raise ValueError(
            f"{path}: written by an older capstone (it records no recipe): it cannot be "
            "resumed; train a new run (its model.npz still works for search)"
        )
    differ = run_differences(
        meta.get("info", {}), model.info["data_fingerprint"], model.info.get("glove")
    )
    if "data_fingerprint" in differ:
        was, now = differ["data_fingerprint"]
        raise ValueError(
            f"{path}: cannot resume on other data: the run trained on data with fingerprint "
            f"{was}, this data has {now}"
        )
    if "glove" in differ:
        was, now = differ["glove"]
        raise ValueError(
            f"{path}: cannot resume with other word vectors: the run trained with {was}, "
            f"these are {now}"
        )
    changed = [
        f.name
        for f in fields(TrainConfig)
        if f.name not in RESUMABLE_CHANGES and saved.get(f.name) != getattr(config, f.name)
    ]
    if changed:
        raise ValueError(
            f"{path}: cannot resume with different settings: "
            + ", ".join(f"{n} was {saved.get(n)!r}, now {getattr(config, n)!r}" for n in changed)
        )
    history = list(meta.get("history", []))
    if len(history) > config.epochs:
        raise ValueError(
            f"{path}: {len(history)} epochs are done already; epochs={config.epochs} would "
            f"train none (and keep epoch {len(history)}): ask for more than {len(history)}"
        )
    missing = [name for name in model.named_parameters if name not in arrays]
    if missing:
        raise ValueError(f"{path}: the checkpoint lacks {', '.join(missing)}")
    for name, p in model.named_parameters.items():
        if arrays[name].shape != p.shape:
            raise ValueError(
                f"{path}: checkpoint {name} has shape {arrays[name].shape}, "
                f"the model needs {p.shape}"
            )
        p.data[...] = arrays[name]
    names = list(model.named_parameters)
    load_optimizer_state(optimizer, names, arrays, meta, path)
    best = {name: arrays[f"best.{name}"] for name in names if f"best.{name}" in arrays}
    return history, best
