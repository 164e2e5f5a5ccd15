"""Command line: ``python -m capstone COMMAND`` (demo, train, evaluate, search, similar, tags,
words, rank, runs, info, describe, index, serve).

A thin shell: it parses arguments (bad ones are refused before any data loads, naming the
flag), calls the library (`capstone.runs.Run` for everything a trained run does) and prints.
Runs live in ``<data home>/runs/<name>/`` (`capstone.data.paths.runs_dir`): ``model.npz``,
``checkpoint.npz`` (written each epoch; ``train --resume`` continues from it), ``metrics.json``
(written by ``evaluate`` and ``demo``) and ``database.npz`` (a cache). Commands that need a model
take ``--run NAME`` or ``--model PATH``; by default they use the newest run. User mistakes end
with ``error: ...`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import pickle
import socket
import sys
import time
import warnings
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from capstone import __version__
from capstone.common.archive import atomic_write, load_archive
from capstone.common.locks import FolderLocked
from capstone.common.memory import release_freed_memory
from capstone.data.paths import cache_dir, runs_dir
from capstone.dataset import DEMO_IMAGES, Dataset, DemoSizeMismatch, load_dataset
from capstone.evaluation.metrics import format_report
from capstone.frontends import cli_course
from capstone.image.model import ImageEmbedder
from capstone.image.weights import WeightsUnavailable
from capstone.runs import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    Run,
    list_interrupted,
    list_runs,
    resume_command,
    runs_folder,
)
from capstone.search.engine import Describe, SearchEngine, plus_minus, query_vector
from capstone.search.terms import MAX_TERMS, MAX_WEIGHT, Term, parse_terms, photo_term
from capstone.text.embedding import TextEmbedder
from capstone.training.optimizers import OPTIMIZERS
from capstone.training.recipes import DEFAULT_RECIPE, RECIPES, SGD_MOMENTUM, TrainConfig
from capstone.training.train import CHECKPOINT_KIND, check_run_folder, train

__all__ = ["main"]

GRID_MAX = 36  # tiles in a --show grid: more make a huge PNG that takes minutes to draw
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


def _count(least: int):
    """An argparse type: an integer >= ``least`` (the error names the flag, before any data)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {least} or more, got {value}")
        return value

    return parse


def _image_id(text: str) -> int:
    """An argparse type: a COCO image id (a non-negative 64-bit integer)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an image id is an integer, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"no image has the id {value}: ids lie in 0..2**63-1")
    return value


def _folder_name(what: str):
    """An argparse type: the name of a ``what`` (run, collection), one folder or file name
    inside its folder (no path: nothing outside it is ever written)."""

    def parse(text: str) -> str:
        if not text or text.startswith(".") or "/" in text or "\\" in text:
            raise argparse.ArgumentTypeError(
                f"{text!r}: a {what} name is one folder name (no '/', not starting with '.')"
            )
        return text

    return parse


_run_name = _folder_name("run")


def _input_file(text: str) -> Path:
    """An argparse type: a file to read (every file flag: --glove, --weights, --image, ...)."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, expected a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def _output_file(suffix: str, *, replace: bool):
    """An argparse type: where to write a ``suffix`` file, in a folder that exists; a file that
    exists is refused unless ``replace`` (a grid may be redrawn, saved data is never lost)."""

    def parse(text: str) -> Path:
        path = Path(text).expanduser()
        if path.suffix.lower() != suffix:
            raise argparse.ArgumentTypeError(f"{text}: give a file name ending in {suffix}")
        if path.is_dir():
            raise argparse.ArgumentTypeError(
                f"{text} is a folder: give a file name ending in {suffix}"
            )
        if not replace and path.exists():
            raise argparse.ArgumentTypeError(f"{text} exists: choose a new file (nothing replaced)")
        if not path.parent.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: the folder {path.parent} does not exist")
        return path

    return parse


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="DIR",
        help="folder with captions_train2014.json and resnet18_features.pkl "
        "(default: $CAPSTONE_DATA, then the cogworks-data cache, then the embedded demo)",
    )
    p.add_argument(
        "--glove",
        type=_input_file,
        metavar="FILE",
        help="GloVe in word2vec text format (default: the data folder's "
        "glove.6B.200d.txt.w2v, else the embedded GloVe 6B 50-d)",
    )


def _add_model_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--run", type=_run_name, metavar="NAME", help="use the model of this run (the newest)"
    )
    group.add_argument("--model", metavar="FILE", help="use this model.npz")
    p.add_argument(
        "--other-data",
        action="store_true",
        help="use the run on data or word vectors other than its own (its validation split "
        "then means nothing; the output says so)",
    )


def _add_train_args(p: argparse.ArgumentParser, epochs: int) -> None:
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
        "--epochs", type=_count(1), default=epochs, help=f"passes over the captions ({epochs})"
    )
    p.add_argument("--batch-size", type=_count(1), help="(the recipe's)")
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
        type=_count(0),
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
        type=_count(0),
        metavar="N",
        help="training images held out to pick the best epoch, 0 for the last epoch (the recipe's)",
    )
    p.add_argument(
        "--patience",
        type=_count(1),
        metavar="EPOCHS",
        help="stop after this many epochs without a better pick (none)",
    )
    p.add_argument("--seed", type=_count(0), help="(0)")


#: TrainConfig fields by the flag that sets them, so that errors name what the user typed
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


def _config(args) -> TrainConfig:
    """The training settings of the flags; a bad one is an error naming its flag."""
    try:
        return _settings(args)
    except ValueError as e:
        message = str(e)
        for field, flag in FLAGS.items():
            message = message.replace(f"`{field}`", flag)
        raise ValueError(message) from None


def _given(args) -> dict:
    """The training settings the user typed (flags left out are None: the recipe decides)."""
    values = {
        "recipe": args.recipe,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "learning_rate": args.lr,
        "momentum": args.momentum,
        "margin": args.margin,
        "hard_fraction": args.hard,
        "both_directions": args.both_directions,
        "warmup_epochs": args.warmup,
        "text_map": args.text_map,
        "select_images": args.select_images,
        "patience": args.patience,
        "seed": args.seed,
    }
    return {k: v for k, v in values.items() if v is not None}


def _settings(args) -> TrainConfig:
    return TrainConfig(**_given(args))


def _resumed_config(args, checkpoint: Path) -> TrainConfig:
    """A resumed run's settings: its own, from its checkpoint; only --epochs and --patience
    may change. A flag that asks for another setting is an error naming it."""
    if not checkpoint.is_file():
        raise FileNotFoundError(f"nothing to resume: {checkpoint} not found (--run {args.run})")
    saved = load_archive(checkpoint, kind=CHECKPOINT_KIND)[1].get("config", {})
    if "recipe" not in saved:  # an older capstone's: `train` says so
        return _config(args)
    given = _given(args)
    for field, value in given.items():
        if field not in ("epochs", "patience") and saved.get(field) != value:
            raise ValueError(
                f"{FLAGS[field]} {value}: run {args.run} was trained with {saved.get(field)}, "
                "and a resumed run keeps its settings (leave the flag out)"
            )
    names = {f.name for f in fields(TrainConfig)}
    kept = {k: v for k, v in saved.items() if k in names}
    return TrainConfig(**{**kept, "epochs": args.epochs, "patience": given.get("patience")})


def _new_run_name(prefix: str) -> str:
    """``prefix-YYYYmmdd-HHMMSS``, made unique by creating its folder (-2, -3, ... if taken)."""
    stamp = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    runs_dir().mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        name = stamp if n == 1 else f"{stamp}-{n}"
        try:
            (runs_dir() / name).mkdir()  # atomic: two runs in one second get two folders
            return name
        except FileExistsError:
            continue
    raise FileExistsError(f"{runs_dir()}: no free run name for {stamp}")


def _run(args, *, embed_captions: bool = True) -> tuple[Run, Dataset]:
    """The run that ``--model``, ``--run`` or else the newest run names, with its data.

    The model file is found before the data loads (which can take a while), then the run is
    checked against the data: other data or word vectors stop here unless ``--other-data``.
    """
    run = Run.load(args.model or args.run)
    ds = load_dataset(
        args.data, glove=args.glove, verbose=not args.json, embed_captions=embed_captions
    )
    run.check(ds, other_data=args.other_data)
    return cli_course.use_student(args, run, ds)


def _print_warnings(run: Run, args) -> None:
    """What `Run.check` accepted under ``--other-data`` (with --json: in the JSON instead)."""
    if run.warnings and not args.json:
        for warning in run.warnings:
            print(f"warning: --other-data: {warning}", file=sys.stderr)
        print("warning: the run's validation split means nothing on this data", file=sys.stderr)


def _train(ds: Dataset, config: TrainConfig, run: str, resume: bool):
    run_dir = runs_folder() / run
    print(f"training into {run_dir}", file=sys.stderr)
    return train(
        ds.data,
        ds.caption_embeddings,
        config,
        run_dir=run_dir,
        resume=resume,
        info=ds.info(),
    ), run_dir


def cmd_train(args) -> int:
    if args.student:
        return cli_course.cmd_train_student(args, _new_run_name)
    if args.resume and not args.run:
        raise ValueError("--resume needs --run NAME (the run to continue)")
    # bad settings, and a run folder training would spoil, fail before the data (slow to load)
    folder = runs_folder()
    if args.resume:
        config = _resumed_config(args, folder / args.run / CHECKPOINT_FILE)
    else:
        config = _config(args)
    if args.run:
        check_run_folder(folder / args.run, args.resume)
    ds = load_dataset(args.data, glove=args.glove, verbose=True)
    args.data_folder = ds.files.captions.parent
    args.run_name = args.run or _new_run_name("run")
    result, run_dir = _train(ds, config, args.run_name, args.resume)
    print(f"saved {run_dir / 'model.npz'}  ({_summary(result)})")
    return 0


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


def cmd_evaluate(args) -> int:
    run, ds = _run(args)
    report = run.evaluate(ds)
    _print_warnings(run, args)
    _save_metrics(run, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"run {run.name}: {run.path}")
        print(format_report(report))
    return 0


def _save_metrics(run: Run, report: dict) -> None:
    """``metrics.json`` beside a run's model (a report of the run: replaced by a newer one)."""
    if not run.in_runs_dir or run.warnings:  # another data's figures are not the run's
        return
    report = {**report, "model_sha256": run.weights_sha256}
    path = run.path.parent / METRICS_FILE
    try:
        atomic_write(path, lambda f: f.write(json.dumps(report, indent=2).encode()), overwrite=True)
    except OSError as e:
        print(f"warning: could not write {path}: {e}", file=sys.stderr)


def _show_queries(ds: Dataset, model: ImageEmbedder, queries, k: int = 3) -> None:
    images = model.embed(ds.data.descriptors)
    for query in queries:
        print(f'\nquery: "{query}"')
        _say_ignored(_ignored(ds.text, [(1.0, query)]), indent="  ")
        try:
            scores = images @ model.embed_text(ds.text.embed_query(query))
        except ValueError as e:
            print(f"  {e}")
            continue
        for i in np.argsort(-scores)[:k]:
            caption = ds.data.caption_texts_of_image(i)[0]
            print(f"  {scores[i]:.3f}  image {ds.data.image_ids[i]}: {caption}")


def cmd_demo(args) -> int:
    start = time.perf_counter()
    config = _config(args)
    if args.run and (runs_dir() / args.run / "checkpoint.npz").exists():
        raise FileExistsError(
            f"run {args.run} exists already ({runs_dir() / args.run}): give the demo another "
            f"--run, or continue that one with python -m capstone train --run {args.run} "
            "--resume --epochs N"
        )
    try:
        ds = load_dataset(demo=True, demo_images=args.images, verbose=True)
    except DemoSizeMismatch as e:  # the rule is load_dataset's; the flag is named here
        raise ValueError(f"--images {args.images:,}: {e}") from None
    args.data_folder = ds.files.captions.parent
    args.run_name = args.run or _new_run_name("demo")
    result, run_dir = _train(ds, config, args.run_name, resume=False)
    run = Run(run_dir / MODEL_FILE, result.model)
    report = run.evaluate(ds)
    print(f"\nrecipe {result.model.info['train']['recipe']}, {_summary(result)}\n")
    print(format_report(report))
    _show_queries(ds, result.model, DEMO_QUERIES)
    _save_metrics(run, report)
    print(
        f"\nsaved {run_dir}/model.npz and metrics.json; demo took "
        f"{time.perf_counter() - start:.0f} s"
    )
    return 0


def _engine(args, *, searches: bool = True) -> SearchEngine:
    """The search engine over the chosen run's validation images (the course's database), or
    all with ``--all-images``; ``searches=False`` (tags, words: they search no images) says
    nothing about images."""
    run, ds = _run(args)
    images = "all" if searches and args.all_images else "validation"
    engine = run.engine(ds, images)
    _print_warnings(run, args)
    args.database = {"run": run.name, "images": images, "n_images": len(engine.database)}
    if run.warnings:
        args.database["warnings"] = run.warnings
    if searches and not args.json:
        what = "every image" if args.all_images else "the validation images"
        print(
            f"searching {what} of run {run.name}: {len(engine.database):,} of "
            f"{ds.data.n_images:,}" + ("" if args.all_images else " (--all-images for all)"),
            file=sys.stderr,
        )
    return engine


def _print_results(results, args, ignored: list[str] = ()) -> None:
    if args.json:
        rows = [{"rank": i + 1, **asdict(r)} for i, r in enumerate(results)]
        print(json.dumps({**args.database, "ignored_words": ignored, "results": rows}, indent=2))
    else:
        _say_ignored(ignored)
        for i, r in enumerate(results, 1):
            print(f"#{i:<3} {r.score:6.3f}  image {r.image_id}  {r.url}")
            for caption in r.captions[: args.captions]:
                print(f"       {caption.strip()}")
    if args.show:
        from capstone.search.display import show_grid  # imports matplotlib: only when asked

        figure = show_grid(results[:GRID_MAX], cache_dir=cache_dir() / "images")
        figure.savefig(args.show, dpi=100, bbox_inches="tight")
        shown = f" (the first {GRID_MAX} of {len(results)})" if len(results) > GRID_MAX else ""
        print(f"grid saved to {args.show}{shown}", file=sys.stderr)


def _ignored(text: TextEmbedder, terms: list[Term]) -> list[str]:
    """The words of the text terms that add nothing (IDF 0 or no GloVe vector)."""
    return [w for _, t in terms if isinstance(t, str) for w in text.known_words(t)[1]]


def _terms(args, query: str | None) -> list[Term]:
    """The terms of ``query`` (`capstone.search.terms`), then one per --add and --subtract
    (words, or a photo file: each flag's value is one term)."""
    terms = [] if query is None else parse_terms(query, photos=True)
    return terms + [(w, photo_term(t) or t) for w, t in plus_minus(args.add, args.subtract)]


def _describe_terms(args, terms: list[Term]) -> Describe | None:
    """The photo terms' descriptors, computed now (before any data loads, so a missing weight
    file is said at once), as a lookup; None when no term is a photo."""
    photos = {t for _, t in terms if isinstance(t, Path)}
    if not photos:
        return None
    describer = _describer(args)
    return {photo: describer.describe(photo) for photo in photos}.__getitem__


def _say_ignored(ignored: list[str], indent: str = "") -> None:
    if ignored:
        print(f"{indent}ignored (IDF 0 or no GloVe vector): {', '.join(ignored)}")


def cmd_search(args) -> int:
    if (args.text is None) == (args.image is None):
        raise ValueError("give a query TEXT or --image PHOTO (one of them)")
    if args.image is not None and (args.add or args.subtract or args.collection):
        raise ValueError("--image searches the run's images by one photo: no --add, --subtract "
                         "or --collection with it")  # fmt: skip
    if args.paths and not args.collection:
        raise ValueError("--paths prints the photos of a --collection")
    if args.collection and (args.show or args.all_images):
        raise ValueError("--show and --all-images are for the run's images, not a --collection")
    if args.collection:
        return _search_collection(args)
    if args.image is not None:
        descriptor = _describe_one(args, args.image)
        engine = _engine(args)
        _print_results(engine.similar_to_descriptor(descriptor, args.k), args)
        return 0
    terms = _terms(args, args.text)
    describe = _describe_terms(args, terms)
    engine = _engine(args)
    results = engine.search_vector(engine.query_vector(terms, describe=describe), args.k)
    _print_results(results, args, _ignored(engine.dataset.text, terms))
    return 0


def _describer(args, *, download: bool = True):
    """The ResNet-18 of ``--weights`` (else the cached weights, else downloaded if allowed)."""
    from capstone.image.photos import PhotoDescriber  # the network loads only when asked
    from capstone.image.weights import locate_weights

    progress = download and not getattr(args, "json", False)
    return PhotoDescriber(locate_weights(args.weights, download=download, progress=progress))


def _describe_one(args, photo: Path) -> np.ndarray:
    """The (1, 512) descriptor of one photo (described before any data loads)."""
    return _describer(args).describe(photo)


def _search_collection(args) -> int:
    from capstone.search.collection import Collection, collection_file

    archive = collection_file(args.collection)
    if not archive.is_file():
        raise FileNotFoundError(
            f"no collection {args.collection!r} ({archive}): index a folder first, "
            f"python -m capstone index DIR --name {args.collection}"
        )
    collection = Collection.load(archive)
    if not len(collection):
        raise ValueError(f"collection {args.collection!r} ({archive}) holds no photos")
    terms = _terms(args, args.text)
    describe = _describe_terms(args, terms)
    run, ds = _run(args, embed_captions=False)
    if collection.info.get("model_sha256") != run.weights_sha256:
        collection.embeddings = run.model.embed(collection.descriptors)  # this run's model
    found = collection.query(query_vector(run.model, ds.text, terms, describe), args.k)
    ignored = _ignored(ds.text, terms)
    if args.json:
        rows = [{"rank": i, "path": str(p), "score": s} for i, (p, s) in enumerate(found, 1)]
        print(json.dumps({"collection": args.collection, "run": run.name, "folder":
                          str(collection.folder), "ignored_words": ignored, "results": rows},
                         indent=2))  # fmt: skip
    elif args.paths:
        print("\n".join(str(p) for p, _ in found))
    else:
        _say_ignored(ignored)
        for i, (path, score) in enumerate(found, 1):
            print(f"#{i:<3} {score:6.3f}  {path}")
    return 0


def cmd_similar(args) -> int:
    if (args.image_id is None) == (args.photo is None):
        raise ValueError("give an IMAGE_ID or --photo PHOTO (one of them)")
    if (args.add or args.subtract) and args.space != "semantic":
        raise ValueError("--add/--subtract work in the semantic space only")
    if (args.add or args.subtract) and args.photo is not None:
        raise ValueError("--add/--subtract work with an IMAGE_ID, not --photo")
    descriptor = _describe_one(args, args.photo) if args.photo is not None else None
    terms = _terms(args, None)
    describe = _describe_terms(args, terms)
    engine = _engine(args)
    if terms:
        q = engine.query_vector(terms, image_id=args.image_id, describe=describe)
        results = engine.search_vector(q, args.k, exclude=[args.image_id])
    elif descriptor is not None:
        results = engine.similar_to_descriptor(descriptor, args.k, space=args.space)
    else:
        results = engine.similar(args.image_id, k=args.k, space=args.space)
    _print_results(results, args, _ignored(engine.dataset.text, terms))
    return 0


def cmd_rank(args) -> int:
    terms = parse_terms(args.text, photos=True)
    describe = _describe_terms(args, terms)
    engine = _engine(args)
    rank = engine.rank_of_vector(engine.query_vector(terms, describe=describe), args.image_id)
    ignored = _ignored(engine.dataset.text, terms)
    if args.json:
        print(json.dumps({**args.database, "ignored_words": ignored, **asdict(rank)}, indent=2))
        return 0
    _say_ignored(ignored)
    where = "" if rank.in_database else " (it is not one of them: the rank it would have)"
    print(
        f"image {rank.image_id} ranks {rank.rank:,} of {rank.n_images:,} for "
        f'"{args.text}" (score {rank.score:.3f}){where}'
    )
    return 0


def _print_words_json(pairs: list[tuple[str, float]]) -> None:
    print(json.dumps([{"word": w, "score": s} for w, s in pairs], indent=2))


def cmd_tags(args) -> int:
    if (args.image_id is None) == (args.photo is None):
        raise ValueError("give an IMAGE_ID or --photo PHOTO (one of them)")
    descriptor = _describe_one(args, args.photo) if args.photo is not None else None
    engine = _engine(args, searches=False)
    if descriptor is not None:
        tags = engine.tags_of_descriptor(descriptor, k=args.k)
    else:
        tags = engine.tags(args.image_id, k=args.k)
    if args.json:
        _print_words_json(tags)
        return 0
    if descriptor is not None:
        print(f"photo {args.photo}")
    else:
        row = engine.dataset.data.image_index(args.image_id)
        print(f"image {args.image_id}: {engine.dataset.data.urls[row]}")
        for caption in engine.dataset.data.caption_texts_of_image(row):
            print(f"  caption: {caption.strip()}")
    print("tags: " + ", ".join(f"{w} ({s:.2f})" for w, s in tags))
    return 0


def cmd_words(args) -> int:
    engine = _engine(args, searches=False)
    words = engine.similar_words(args.word, k=args.k)
    if args.json:
        _print_words_json(words)
    else:
        idf = engine.dataset.text.idf[args.word.strip().lower()]
        print(f"{args.word} (IDF {idf:.2f}): " + ", ".join(f"{w} ({s:.2f})" for w, s in words))
    return 0


def cmd_runs(args) -> int:
    rows = []
    for run in list_runs():
        info, config = run.model.info, run.config
        try:
            r1 = run.saved_report()["models"]["trained"]["recall_at_1"]
        except (KeyError, TypeError):
            r1 = None  # no report, or an unreadable one, only costs this column
        rows.append(
            {
                "name": run.name,
                "status": "trained",
                "date": _date(run.path),
                "data": info.get("data_source", "?"),
                "data_fingerprint": info.get("data_fingerprint"),
                # runs from before recipes existed all trained the course's
                "recipe": config.get("recipe", "course" if config else "?"),
                "epochs": len(run.history),
                "best_epoch": info.get("best_epoch"),
                "val_r1": r1,
                "path": str(run.path),
            }
        )
    stopped = list_interrupted()
    for run in stopped:  # stopped before their model was saved: no model to use yet
        rows.append(
            {
                "name": run.name,
                "status": "interrupted",
                "date": _date(run.checkpoint),
                "data": run.info.get("data_source", "?"),
                "data_fingerprint": run.info.get("data_fingerprint"),
                "recipe": run.info.get("train", {}).get("recipe", "?"),
                "epochs": run.epochs_done,
                "best_epoch": None,
                "val_r1": None,
                "path": str(run.checkpoint),
                "resume": run.resume_command,
            }
        )
    rows.sort(key=lambda r: r["date"])
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no runs in {runs_folder()}: `python -m capstone demo` or `train` makes one")
        return 0
    head = f"{'name':28} {'date':16} {'data':14} {'recipe':7} {'epochs':>6} {'best':>4} {'R@1':>6}"
    print(head)
    for r in rows:
        r1 = f"{r['val_r1']:.1%}" if r["val_r1"] is not None else "-"
        best = r["best_epoch"] if r["best_epoch"] is not None else "-"
        note = "  interrupted: no model yet" if r["status"] == "interrupted" else ""
        print(
            f"{r['name']:28} {r['date']:16} {r['data']:14} {r['recipe']:7} {r['epochs']:>6} "
            f"{best:>4} {r1:>6}{note}"
        )
    print(f"(R@1: caption -> image on the run's validation pools, from `evaluate`; {runs_dir()})")
    if stopped:
        print("interrupted before their model was saved; continue with:")
        for run in stopped:
            print(f"  {run.resume_command}")
    return 0


def _date(path: Path) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))


def cmd_describe(args) -> int:
    describer = _describer(args)
    descriptors, described, failures = describer.describe_paths(args.photos, progress=not args.json)
    for path, reason in failures:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if not described:
        raise ValueError("no photo could be described")
    if args.out is not None:
        # the course's format: int id -> (1, 512) float32, ids 1..n in the order given
        features = {i: descriptors[i - 1 : i] for i in range(1, len(described) + 1)}
        atomic_write(args.out, lambda f: pickle.dump(features, f, protocol=4))
    rows = [
        {"id": i, "path": str(path), "norm": float(np.linalg.norm(descriptors[i - 1]))}
        for i, path in enumerate(described, 1)
    ]
    if args.json:
        print(json.dumps({"out": str(args.out) if args.out else None, "photos": rows,
                          "skipped": [{"path": str(p), "reason": r} for p, r in failures]},
                         indent=2))  # fmt: skip
        return 0
    for row in rows:
        print(f"{row['id']:>5}  |x| {row['norm']:7.2f}  {row['path']}")
    if args.out is not None:
        print(f"wrote {len(rows)} descriptors to {args.out} (id -> (1, 512) float32, the "
              "course's resnet18_features.pkl format)", file=sys.stderr)  # fmt: skip
    return 0


def cmd_index(args) -> int:
    from capstone.image.photos import find_photos
    from capstone.search.collection import collection_file, index_folder

    run = Run.load(args.model or args.run)
    folder = Path(args.folder).expanduser()
    photos = find_photos(folder)
    name = args.name or folder.resolve().name
    archive = collection_file(name)
    describers = []  # the network loads on the first photo to describe: maybe never

    def describe(paths):
        if not describers:
            describers.append(_describer(args))
        return describers[0].describe_paths(paths, progress=False)

    info = {"run": run.name, "model_sha256": run.weights_sha256}
    collection, report = index_folder(folder, archive, run.model, info, describe, photos)
    for path, reason in report.failures:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(
        f"collection {name}: {len(collection):,} photos of {collection.folder} in {archive} "
        f"({report.added} added, {report.changed} changed, {report.removed} removed, "
        f"{report.unchanged} unchanged, {len(report.failures)} skipped); search it with "
        f'python -m capstone search "TEXT" --collection {name}'
    )
    return 0


def _add_weights_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        type=_input_file,
        metavar="FILE",
        help="ResNet-18 weights: torchvision's resnet18-f37072fd.pth or a .safetensors file "
        "(default: the cached download; downloaded once when online)",
    )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text}")
    return port


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; an OSError names both flags."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)
    except OSError as e:
        listener.close()
        if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
            raise OSError(
                f"--host {host}: not a valid address of this machine, cannot be bound "
                f"({e.strerror or e}); 127.0.0.1 serves this machine, 0.0.0.0 every network"
            ) from None
        raise OSError(
            f"--host {host} --port {port}: {e.strerror or e} (another server on that port? "
            "choose another --port)"
        ) from None
    return listener


def _photo_describer(args):
    """The server's ResNet-18 when its weights are at hand (``--weights`` or cached), else None:
    a server does not download them; its photo page says how to get them."""
    try:
        return _describer(args, download=False)
    except WeightsUnavailable:
        print("note: photo queries are off: no ResNet-18 weights (--weights FILE)", file=sys.stderr)
        return None


def cmd_serve(args) -> int:
    # Flask and the web app load only for this command: the others start faster without them.
    from werkzeug.serving import make_server

    from capstone.frontends.web.app import RequestHandler, create_app, host_names
    from capstone.frontends.web.service import SearchService

    args.json = False
    listener = _listen(args.host, args.port)  # first: a port in use is said at once
    run, ds = _run(args, embed_captions=False)  # searching needs no caption embeddings
    release_freed_memory()  # what parsing the data freed: a server runs for hours
    _print_warnings(run, args)
    service = SearchService.load(run, ds, _photo_describer(args))
    release_freed_memory()
    # bound by _listen, not werkzeug, which exits on an error instead of raising it
    app = create_app(service, hosts=host_names(args.host))  # a Host of another name is a 400
    server = make_server(
        args.host, listener.getsockname()[1], app, threaded=True, fd=listener.fileno(),
        request_handler=RequestHandler,
    )  # fmt: skip
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"serving run {run.name} on {len(service.engines['validation'].database):,} validation "
        f"images and all {ds.data.n_images:,} at http://{host}:{listener.getsockname()[1]}/ "
        "(Ctrl-C stops)",
        flush=True,
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {args.host}: other machines can reach this server", file=sys.stderr)
    try:
        server.serve_forever()  # returns on Ctrl-C: werkzeug catches the KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        listener.close()
    print("stopped", file=sys.stderr)
    return 0


def cmd_info(args) -> int:
    ds = load_dataset(args.data, glove=args.glove, verbose=False)
    data = ds.data
    rows = np.linspace(0, data.n_images - 1, num=min(5, data.n_images)).astype(int)
    examples = [
        {"image_id": int(data.image_ids[i]), "caption": data.caption_texts_of_image(i)[0].strip()}
        for i in rows
    ]
    facts = {
        "data_folder": str(ds.files.captions.parent),
        "source": ds.files.source,
        "demo": ds.files.is_demo,
        "images": data.n_images,
        "captions": data.n_captions,
        "dropped_images": data.n_dropped_images,
        "dropped_captions": data.n_dropped_captions,
        "descriptor_width": int(data.descriptors.shape[1]),
        "data_fingerprint": data.fingerprint,
        "glove": ds.glove.source,
        "glove_words": len(ds.glove),
        "glove_dim": ds.glove.dim,
        "idf_vocabulary": len(ds.text.idf),
        "examples": examples,
    }
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    print(ds.describe())
    print(f"descriptors: {facts['descriptor_width']} wide; data fingerprint {data.fingerprint}")
    print("example image ids (for similar, tags, rank):")
    for e in examples:
        print(f"  {e['image_id']}: {e['caption']}")
    return 0


#: The query language (`capstone.search.terms`), said once for every command that takes one.
QUERY_SYNTAX = (
    f"A query is terms joined by ' + ' or ' - ' (a space before each: 'snow-covered' is one "
    f"word), at most {MAX_TERMS}; a term may start with a weight W: in (0, {MAX_WEIGHT:g}]. "
    "A term is words, or a photo file: one ending in a photo suffix (.jpg, .png, ...) or "
    "starting with ./ ../ / or ~/, which must exist (described with ResNet-18: see --weights). "
    "The query vector is normalize(sum of weight x unit embedding), e.g. "
    """'2:golden retriever + ./pool.jpg - fruit'."""
)


def _add_search_args(
    p: argparse.ArgumentParser, k: int | None, results: bool = True, images: bool = True
) -> None:
    """Data, model, -k and --json; ``images``: --all-images (for commands that search
    images); ``results``: --add, --subtract, --captions and --show."""
    _add_data_args(p)
    _add_model_args(p)
    if k is not None:
        p.add_argument("-k", type=_count(1), default=k, help=f"how many results ({k})")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    if images:
        p.add_argument(
            "--all-images",
            action="store_true",
            help="search every image, not only the run's validation images",
        )
    if results:
        p.add_argument(
            "--add",
            action="append",
            default=[],
            metavar="TERM",
            help="add this term to the query: words or a photo file (repeatable)",
        )
        p.add_argument(
            "--subtract",
            action="append",
            default=[],
            metavar="TERM",
            help="subtract this term from the query: words or a photo file (repeatable)",
        )
        p.add_argument(
            "--captions",
            type=_count(0),
            default=1,
            metavar="N",
            help="captions printed per result (1)",
        )
        p.add_argument(
            "--show",
            type=_output_file(".png", replace=True),
            metavar="PNG",
            help=f"save an image grid of the results (the first {GRID_MAX} at most)",
        )


def _add_version(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--version", action="version", version=f"capstone {__version__}")
    return p


def _command(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand's parser; every command has --version (as the README says)."""
    return _add_version(sub.add_parser(name, **kwargs))


def build_parser() -> argparse.ArgumentParser:
    parser = _add_version(
        argparse.ArgumentParser(
            prog="python -m capstone",
            description="Semantic image search over MS-COCO with MyGrad and MyNN.",
        )
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(
        sub,
        "demo",
        help="generate the embedded demo data if absent, train, evaluate, show queries",
        description="The whole capstone on the embedded demo dataset (generated captions and "
        "descriptors, real GloVe 6B 50-d vectors), in about a minute.",
    )
    p.add_argument(
        "--images",
        type=_count(10),
        help=f"demo size, when it is generated ({DEMO_IMAGES:,}); a demo of another size in "
        "the data home is an error",
    )
    p.add_argument(
        "--run", type=_run_name, metavar="NAME", help="run folder name (default: demo-TIMESTAMP)"
    )
    _add_train_args(p, DEMO_EPOCHS)
    p.set_defaults(func=cmd_demo)

    p = _command(
        sub,
        "train",
        help="train the image embedding model",
        description="Train W (512 x d) on caption/image/confusor triples.",
    )
    _add_data_args(p)
    p.add_argument(
        "--run", type=_run_name, metavar="NAME", help="run folder name (default: run-TIMESTAMP)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run's last checkpoint")
    _add_train_args(p, TrainConfig().epochs)
    cli_course.add_student_arg(p)
    p.set_defaults(func=cmd_train)

    p = _command(
        sub,
        "evaluate",
        help="retrieval metrics of a trained model",
        description="Recall@1/5/10, median rank and MRR on 1,000-image "
        "validation pools, triple accuracy, against an untrained model and chance.",
    )
    _add_data_args(p)
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    cli_course.add_student_arg(p)
    p.set_defaults(func=cmd_evaluate)

    p = _command(
        sub,
        "search",
        help="images for a query (words, weights, + and - terms, photos)",
        description="Top-k images for a query, e.g. "
        'python -m capstone search "two dogs playing in the snow" -k 9. ' + QUERY_SYNTAX,
    )
    p.add_argument("text", nargs="?", metavar="QUERY", help="the query (see above)")
    p.add_argument(
        "--image",
        type=_input_file,
        metavar="PHOTO",
        help="search by a photo instead: the run's images most like it",
    )
    p.add_argument(
        "--collection",
        metavar="NAME",
        help="search the photos of a collection (python -m capstone index)",
    )
    p.add_argument(
        "--paths",
        action="store_true",
        help="with --collection: print bare paths, one a line (for piping)",
    )
    _add_weights_arg(p)
    _add_search_args(p, k=9)
    cli_course.add_student_arg(p)
    p.set_defaults(func=cmd_search)

    p = _command(
        sub,
        "similar",
        help="images like an image",
        description="Top-k images like IMAGE_ID, in the semantic (embedding) "
        "space or in the raw ResNet descriptor space; --add and --subtract move it by terms "
        "of search's query language (words or photo files).",
    )
    p.add_argument("image_id", type=_image_id, metavar="IMAGE_ID", nargs="?")
    p.add_argument("--photo", type=_input_file, metavar="PHOTO", help="an unseen photo instead")
    _add_weights_arg(p)
    p.add_argument(
        "--space",
        choices=("semantic", "descriptor"),
        default="semantic",
        help="compare embeddings or raw descriptors (semantic)",
    )
    _add_search_args(p, k=9)
    p.set_defaults(func=cmd_similar)

    p = _command(
        sub,
        "tags",
        help="words that describe an image",
        description="The caption words nearest the image's embedding (from the run's "
        "vocabulary; no image is searched, so any image of the data may be given).",
    )
    p.add_argument("image_id", type=_image_id, metavar="IMAGE_ID", nargs="?")
    p.add_argument("--photo", type=_input_file, metavar="PHOTO", help="an unseen photo instead")
    _add_weights_arg(p)
    _add_search_args(p, k=5, results=False, images=False)
    p.set_defaults(func=cmd_tags)

    p = _command(
        sub,
        "words",
        help="caption words similar to a word (GloVe)",
        description="Caption words nearest WORD in GloVe space; WORD itself "
        "need not occur in any caption.",
    )
    p.add_argument("word")
    _add_search_args(p, k=10, results=False, images=False)
    p.set_defaults(func=cmd_words)

    p = _command(
        sub,
        "rank",
        help="where one image ranks for a text query",
        description="The rank of IMAGE_ID among the run's validation images (or all) for a "
        'query, e.g. python -m capstone rank "two dogs playing in the snow" 57870. ' + QUERY_SYNTAX,
    )
    p.add_argument("text", metavar="QUERY", help="the query (as search's)")
    p.add_argument("image_id", type=_image_id, metavar="IMAGE_ID")
    _add_weights_arg(p)
    _add_search_args(p, k=None, results=False)
    p.set_defaults(func=cmd_rank)

    p = _command(
        sub,
        "runs",
        help="the trained runs: name, date, data, recipe, epochs, R@1",
        description="Every run in the data home's runs folder, oldest first.",
    )
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p.set_defaults(func=cmd_runs)

    p = _command(
        sub,
        "info",
        help="the data in use: source, counts, GloVe, example image ids",
        description="What `capstone` would use: where the data comes from, how many images "
        "and captions, which word vectors, and a few image ids with a caption each.",
    )
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(func=cmd_info)

    p = _command(
        sub,
        "describe",
        help="ResNet-18 descriptors of photos (the course's 512-d features)",
        description="Describe photos with torchvision's ResNet-18 (ImageNet weights), computed "
        "in NumPy; --out writes them in the course's resnet18_features.pkl format.",
    )
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    p.add_argument(
        "--out",
        type=_output_file(".pkl", replace=False),
        metavar="FILE.pkl",
        help="write the descriptors (a new file)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_weights_arg(p)
    p.set_defaults(func=cmd_describe)

    p = _command(
        sub,
        "index",
        help="make a folder of photos searchable by text (a collection)",
        description="Describe every photo of DIR (recursively) and embed it with a run's model; "
        "again later, only new or changed photos are described. Then: "
        'python -m capstone search "TEXT" --collection NAME',
    )
    p.add_argument("folder", metavar="DIR")
    p.add_argument(
        "--name",
        type=_folder_name("collection"),
        metavar="NAME",
        help="collection name (default: the folder's name)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--run", type=_run_name, metavar="NAME", help="the run's model (newest)")
    group.add_argument("--model", metavar="FILE", help="use this model.npz")
    _add_weights_arg(p)
    p.set_defaults(func=cmd_index)

    p = _command(
        sub,
        "serve",
        help="the search engine as a web page (and a JSON API)",
        description="Serve one run's search engine: search by text (with + / - terms and "
        "weights), browse images with their captions, tags and similar images, export results. "
        "Binds the loopback address unless told otherwise.",
    )
    _add_data_args(p)
    _add_model_args(p)
    _add_weights_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port (8000; 0: any free port)")
    cli_course.add_student_arg(p)
    p.set_defaults(func=cmd_serve)
    cli_course.add_parsers(sub, lambda name, **kwargs: _command(sub, name, **kwargs))
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m capstone`` and the ``capstone`` command."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            # the library warns about optional things (an unwritable cache): one plain line
            warnings.showwarning = _show_warning
            code = args.func(args)
            sys.stdout.flush()  # here, so that a closed pipe is seen below, not at exit
            return code
    except BrokenPipeError:
        # The reader went away (`... | head -1`): stop quietly, as Unix tools do. Python's
        # docs: point stdout at devnull, so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (OSError, ValueError, KeyError, FolderLocked, WeightsUnavailable) as e:
        print(f"error: {_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted{_how_to_resume(args)}", file=sys.stderr)
        return 130


def _message(e: Exception) -> str:
    """An error as one line for the user. A KeyError's str() is the repr of its message: the
    message itself. An OSError of the system (errno and file) names the file and what failed:
    ``could not write .../checkpoint.npz: No space left on device``."""
    if isinstance(e, KeyError) and e.args:
        return str(e.args[0])
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        full = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
        return f"{'could not write ' if full else ''}{e.filename}: {e.strerror}"
    return str(e)


def _how_to_resume(args) -> str:
    """For an interrupted training: what was kept and the command that continues it."""
    name = getattr(args, "run_name", None)
    if name is None or not (runs_dir() / name / CHECKPOINT_FILE).is_file():
        return ""
    command = resume_command(name, args.epochs, args.data_folder, getattr(args, "glove", None))
    return f": run {name} keeps its last finished epoch; continue it with\n  {command}"
