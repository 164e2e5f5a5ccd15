"""Training: ``train`` (a run of the image embedding model) and ``demo`` (the whole capstone on
the embedded demo data: train, evaluate, show a few queries).

Runs live in ``<data home>/runs/<name>/``; ``train --resume`` continues one from its
``checkpoint.npz``. The training flags reach `TrainConfig` through one table, `FLAGS`, so that
an error names the flag the user typed rather than the field. ``train --student DIR`` trains
with a course kit's functions instead (`capstone.course.student.train_student`).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields
from pathlib import Path

from capstone.common.archive import load_archive
from capstone.course.student import (
    STUDENT_LEARNING_RATE,
    load_student,
    student_dataset,
    student_file,
    train_student,
)
from capstone.dataset import DEMO_IMAGES, Dataset, DemoSizeMismatch, load_dataset
from capstone.embeddings.image import ImageEmbedder
from capstone.evaluation.metrics import format_report
from capstone.frontends.cli.args import add_data_args, add_student_arg, command, integer, run_name
from capstone.frontends.cli.output import Result, ignored_line, note
from capstone.frontends.cli.runs import save_metrics
from capstone.runs import CHECKPOINT_FILE, MODEL_FILE, Run, resume_command, runs_folder
from capstone.search.engine import SearchEngine
from capstone.training.checkpoint import (
    CHECKPOINT_KIND,
    RESUMABLE_CHANGES,
    check_run_folder,
    nothing_to_resume,
)
from capstone.training.optimizers import OPTIMIZERS
from capstone.training.recipes import DEFAULT_RECIPE, RECIPES, SGD_MOMENTUM, TrainConfig
from capstone.training.train import train

__all__ = [
    "DEMO_QUERIES",
    "FLAGS",
    "STUDENT_FIELDS",
    "TrainingInterrupted",
    "add_parsers",
    "cmd_demo",
    "cmd_train",
    "train_config",
    "train_settings",
]

DEMO_EPOCHS = 30  # default recipe: ~20 s of training on 2 cores, R@1 ~28% vs 0.1% chance
DEMO_QUERIES = (
    "two dogs playing in the snow",
    "a pizza on a kitchen table",
    "a red bus on a city street",
    "a giraffe beside a zebra",
    # "feline", "automobile" and "seaside" occur in no demo caption: IDF 0, so they add nothing
    "a feline sleeping on a sofa",
    "an automobile parked by the seaside",
)

#: Each `TrainConfig` field and the flag that sets it (its value arrives as the flag's argparse
#: name: ``--batch-size`` as ``batch_size``), so that errors name what the user typed.
FLAGS = {
    "recipe": "--recipe",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "optimizer": "--optimizer",
    "learning_rate": "--lr",
    "momentum": "--momentum",
    "margin": "--margin",
    "hard_fraction": "--hard",
    "both_directions": "--both-directions",
    "warmup_epochs": "--warmup",
    "text_map": "--text-map",
    "select_images": "--select-images",
    "patience": "--patience",
    "seed": "--seed",
}

#: The `FLAGS` fields ``train --student`` takes: the student's ``train_step`` is plain SGD on
#: the course recipe, so every other training flag is refused, by name.
STUDENT_FIELDS = ("epochs", "batch_size", "learning_rate", "margin", "seed")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training. ``resume_hint``: what was kept and the command that continues
    the run ("" when no epoch finished: there is nothing to continue)."""

    def __init__(self, resume_hint: str):
        super().__init__(resume_hint)
        self.resume_hint = resume_hint


def _add_train_args(p: argparse.ArgumentParser, epochs: int) -> None:
    """The training flags, one per entry of `FLAGS`; ``epochs``: the default of --epochs."""
    recipes = ", ".join(
        f"{name}: {r['optimizer']} lr {r['learning_rate']:g}, margin {r['margin']:g}, "
        f"batch {r['batch_size']}"
        for name, r in RECIPES.items()
    )
    p.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        help=f"the loss: course (sampled triples, the assignment's), vse0 (every other image "
        f"of the batch a confusor), vse++ (the hardest of them) ({DEFAULT_RECIPE}); "
        f"their defaults: {recipes}",
    )
    p.add_argument(
        "--epochs", type=integer(1), default=epochs, help=f"passes over the captions ({epochs})"
    )
    p.add_argument("--batch-size", type=integer(1), help="(the recipe's)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="(the recipe's)")
    p.add_argument("--lr", type=float, help="learning rate (the recipe's)")
    p.add_argument("--momentum", type=float, help=f"SGD only ({SGD_MOMENTUM})")
    p.add_argument("--margin", type=float, help="loss margin (the recipe's)")
    p.add_argument(
        "--hard",
        type=float,
        metavar="FRACTION",
        help="course recipe: fraction of triples with hard confusors (0)",
    )
    p.add_argument(
        "--both-directions",
        action=argparse.BooleanOptionalAction,
        help="vse0/vse++: also rank captions for each image (the recipe's)",
    )
    p.add_argument(
        "--warmup",
        type=integer(0),
        metavar="EPOCHS",
        help="vse++: epochs of vse0 first (the recipe's)",
    )
    p.add_argument(
        "--text-map",
        action=argparse.BooleanOptionalAction,
        help="also learn a d x d map of the text embeddings (the recipe's)",
    )
    p.add_argument(
        "--select-images",
        type=integer(0),
        metavar="N",
        help="training images held out to pick the best epoch, 0 for the last epoch (the recipe's)",
    )
    p.add_argument(
        "--patience",
        type=integer(1),
        metavar="EPOCHS",
        help="stop after this many epochs without a better pick (none)",
    )
    p.add_argument("--seed", type=integer(0), help="(0)")


def add_parsers(sub) -> None:
    """The ``demo`` and ``train`` commands."""
    p = command(
        sub,
        "demo",
        cmd_demo,
        help="generate the embedded demo data if absent, train, evaluate, show queries",
        description="The whole capstone on the embedded demo dataset (generated captions and "
        "descriptors, real GloVe 6B 50-d vectors), in about a minute.",
    )
    p.add_argument(
        "--images",
        type=integer(10),
        help=f"demo size, when it is generated ({DEMO_IMAGES:,}); a demo of another size in "
        "the data home is an error",
    )
    p.add_argument(
        "--run", type=run_name, metavar="NAME", help="run folder name (default: demo-TIMESTAMP)"
    )
    _add_train_args(p, DEMO_EPOCHS)

    p = command(
        sub,
        "train",
        cmd_train,
        help="train the image embedding model",
        description="Train W (512 x d) on caption/image/confusor triples.",
    )
    add_data_args(p)
    p.add_argument(
        "--run", type=run_name, metavar="NAME", help="run folder name (default: run-TIMESTAMP)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run's last checkpoint")
    add_student_arg(p)
    _add_train_args(p, TrainConfig().epochs)


def train_settings(flags: dict) -> dict:
    """The `TrainConfig` fields the training flags set, ``{field: value}``; a flag left out
    (None) is left out: the recipe decides. ``flags``: by argparse name (``batch_size``)."""
    given = {field: flags[flag[2:].replace("-", "_")] for field, flag in FLAGS.items()}
    return {field: value for field, value in given.items() if value is not None}


def train_config(settings: dict) -> TrainConfig:
    """``TrainConfig(**settings)``; a bad setting is a ValueError naming its flag."""
    try:
        return TrainConfig(**settings)
    except ValueError as e:
        message = str(e)
        for field, flag in FLAGS.items():
            message = message.replace(f"`{field}`", flag)
        raise ValueError(message) from None


def _resumed_config(run: str, checkpoint: Path, settings: dict) -> TrainConfig:
    """A resumed run's settings: its own, from its checkpoint; only `RESUMABLE_CHANGES` (--epochs
    and --patience) may change. A flag that asks for another setting is an error naming it."""
    if not checkpoint.is_file():
        raise nothing_to_resume(f"{checkpoint} not found (--run {run})")
    saved = load_archive(checkpoint, kind=CHECKPOINT_KIND)[1].get("config", {})
    if "recipe" not in saved:  # an older capstone's: `train` says so
        return train_config(settings)
    for field, value in settings.items():
        if field not in RESUMABLE_CHANGES and saved.get(field) != value:
            raise ValueError(
                f"{FLAGS[field]} {value}: run {run} was trained with {saved.get(field)}, "
                "and a resumed run keeps its settings (leave the flag out)"
            )
    names = {f.name for f in fields(TrainConfig)}
    kept = {k: v for k, v in saved.items() if k in names}
    return train_config(
        {**kept, "epochs": settings["epochs"], "patience": settings.get("patience")}
    )


def _new_run_name(prefix: str) -> str:
    """``prefix-YYYYmmdd-HHMMSS``, made unique by creating its folder (-2, -3, ... if taken)."""
    stamp = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    runs_folder().mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        name = stamp if n == 1 else f"{stamp}-{n}"
        try:
            (runs_folder() / name).mkdir()  # atomic: two runs in one second get two folders
            return name
        except FileExistsError:
            continue
    raise FileExistsError(f"{runs_folder()}: no free run name for {stamp}")


def _train_run(ds: Dataset, config: TrainConfig, name: str, *, resume: bool, glove: Path | None):
    """Train run ``name`` on ``ds``: (`capstone.training.train.train`'s result, the run's
    folder). Ctrl-C raises `TrainingInterrupted`, saying how to continue (``glove``: the
    --glove flag the continuing command repeats)."""
    run_dir = runs_folder() / name
    note(f"training into {run_dir}")
    try:
        result = train(
            ds.data, ds.caption_embeddings, config, run_dir=run_dir, resume=resume, info=ds.info()
        )
    except KeyboardInterrupt:
        hint = ""
        if (run_dir / CHECKPOINT_FILE).is_file():
            command = resume_command(name, config.epochs, ds.files.captions.parent, glove)
            hint = f": run {name} keeps its last finished epoch; continue it with\n  {command}"
        raise TrainingInterrupted(hint) from None
    return result, run_dir


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _summary(result) -> str:
    """Which epoch's weights were kept, and why."""
    best = result.history[result.best_epoch - 1]
    if len(result.selection_images):
        return (
            f"best of {_plural(len(result.history), 'epoch')}: epoch {result.best_epoch}, R@1 "
            f"{best['selection_r1']:.3f} on {len(result.selection_images):,} held-out "
            f"training images; val accuracy {best['val_accuracy']:.3f}"
        )
    return f"last epoch {result.best_epoch}, val accuracy {best['val_accuracy']:.3f}"


def _train_student(
    student: Path, *, data: str | None, glove: Path | None, run: str | None, settings: dict
) -> Result:
    """``train --student DIR``: a new run (``run``, else ``student-TIMESTAMP``) of the course
    recipe through the student's ``coco_lookups``, ``make_triples``, ``train_step``,
    ``image_embedding`` and text embedding; ``settings``: `train_settings`' (`STUDENT_FIELDS`)."""
    for field in settings:
        if field not in STUDENT_FIELDS:
            raise ValueError(
                f"{FLAGS[field]}: training with --student runs the course recipe through your "
                "train_step (plain SGD): leave it out"
            )
    config = train_config({"recipe": "course", "learning_rate": STUDENT_LEARNING_RATE, **settings})
    module = load_student(student)  # before the data: an import error is said at once
    if run:
        check_run_folder(runs_folder() / run, False)
    ds = load_dataset(data, glove=glove, verbose=True)
    ds = student_dataset(ds, module, embed_captions=True)
    run_dir = runs_folder() / (run or _new_run_name("student"))
    run_dir.mkdir(parents=True, exist_ok=True)
    source = str(student_file(student).resolve())
    note(f"training into {run_dir} with {source}")
    model, _ = train_student(
        module,
        ds,
        config,
        info={**ds.info(), "student": source},
        log=lambda epoch, loss: note(f"epoch {epoch}: loss {loss:.4f}"),
    )
    model.save(run_dir / MODEL_FILE)
    return Result((f"saved {run_dir / MODEL_FILE} (trained by {source})",))


def cmd_train(
    *,
    data: str | None,
    glove: Path | None,
    run: str | None,
    resume: bool,
    student: Path | None,
    **flags,
) -> Result:
    """``train``: a new run (named ``run``, else ``run-TIMESTAMP``), or run ``run`` continued
    from its checkpoint if ``resume``; ``flags``: the training flags (`FLAGS`); ``student``:
    train with a course kit's functions instead (`_train_student`)."""
    if student is not None:
        if resume:
            raise ValueError("--resume: training with --student keeps no checkpoint to resume")
        return _train_student(
            student, data=data, glove=glove, run=run, settings=train_settings(flags)
        )
    if resume and not run:
        raise ValueError("--resume needs --run NAME (the run to continue)")
    # bad settings, and a run folder training would spoil, fail before the data (slow to load)
    folder = runs_folder()
    settings = train_settings(flags)
    if resume:
        config = _resumed_config(run, folder / run / CHECKPOINT_FILE, settings)
    else:
        config = train_config(settings)
    if run:
        check_run_folder(folder / run, resume)
    ds = load_dataset(data, glove=glove, verbose=True)
    name = run or _new_run_name("run")
    result, run_dir = _train_run(ds, config, name, resume=resume, glove=glove)
    return Result((f"saved {run_dir / MODEL_FILE}  ({_summary(result)})",))


def _demo_queries(ds: Dataset, model: ImageEmbedder, k: int = 3) -> list[str]:
    """`DEMO_QUERIES` answered over every demo image: the ``k`` best, with a caption each."""
    engine = SearchEngine(ds, model)  # every image: the demo's run has no database cache
    lines = []
    for query in DEMO_QUERIES:
        lines.append(f'\nquery: "{query}"')
        lines.extend(ignored_line(ds.text.known_words(query)[1], indent="  "))
        try:
            found = engine.search(query, k)
        except ValueError as e:
            lines.append(f"  {e}")
            continue
        lines.extend(f"  {r.score:.3f}  image {r.image_id}: {r.captions[0]}" for r in found)
    return lines


def cmd_demo(*, images: int | None, run: str | None, **flags) -> Result:
    """``demo``: train a run (``run``, else ``demo-TIMESTAMP``) on the demo data of ``images``
    images (generated if absent), evaluate it and answer `DEMO_QUERIES`."""
    start = time.perf_counter()
    config = train_config(train_settings(flags))
    runs = runs_folder()  # before the data: a file in its place is said at once
    if run and (runs / run / CHECKPOINT_FILE).exists():
        raise FileExistsError(
            f"run {run} exists already ({runs / run}): give the demo another "
            f"--run, or continue that one with python -m capstone train --run {run} "
            "--resume --epochs N"
        )
    try:
        ds = load_dataset(demo=True, demo_images=images, verbose=True)
    except DemoSizeMismatch as e:  # the rule is load_dataset's; the flag is named here
        raise ValueError(f"--images {images:,}: {e}") from None
    name = run or _new_run_name("demo")
    result, run_dir = _train_run(ds, config, name, resume=False, glove=None)
    trained = Run(run_dir / MODEL_FILE, result.model)
    report = trained.evaluate(ds)
    lines = ["", f"recipe {result.model.info['train']['recipe']}, {_summary(result)}", ""]
    lines.append(format_report(report))
    lines.extend(_demo_queries(ds, result.model))
    save_metrics(trained, report)
    lines.append(
        f"\nsaved {run_dir}/model.npz and metrics.json; demo took "
        f"{time.perf_counter() - start:.0f} s"
    )
    return Result(tuple(lines))
