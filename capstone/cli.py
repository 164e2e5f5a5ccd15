"""Command line: ``python -m capstone {demo,train,evaluate,search,similar,tags}``.

Runs live in ``<data home>/runs/<name>/`` (`capstone.paths.runs_dir`): ``model.npz``,
``checkpoint.npz`` while training, ``metrics.json`` after evaluation. Commands that need a
model take ``--run NAME`` or ``--model PATH``; by default they use the newest run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from capstone.dataset import DEMO_IMAGES, Dataset, load_dataset
from capstone.evaluate import evaluation_report, format_report
from capstone.model import ImageEmbedder
from capstone.paths import runs_dir
from capstone.train import TrainConfig, train
from capstone.triples import split_images

__all__ = ["main"]

DEMO_EPOCHS = 8
DEMO_QUERIES = (
    "two dogs playing in the snow",
    "a pizza on a kitchen table",
    "a man riding a surfboard on a wave",
    "a giraffe beside a zebra",
    # "kitten" and "automobile" occur in no demo caption: they get IDF 0 and add nothing
    "a kitten and an automobile on the street",
)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="DIR",
        help="folder with captions_train2014.json and resnet18_features.pkl "
        "(default: $CAPSTONE_DATA, then the cogworks-data cache, then the embedded demo)",
    )
    p.add_argument(
        "--glove",
        metavar="FILE",
        help="GloVe in word2vec text format (default: the data folder's "
        "glove.6B.200d.txt.w2v, else the embedded GloVe 6B 50-d)",
    )


def _add_model_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--run", metavar="NAME", help="use the model of this run")
    group.add_argument("--model", metavar="FILE", help="use this model.npz")


def _add_train_args(p: argparse.ArgumentParser, epochs: int) -> None:
    d = TrainConfig()
    p.add_argument(
        "--epochs", type=int, default=epochs, help=f"passes over the captions ({epochs})"
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"({d.batch_size})")
    p.add_argument("--lr", type=float, default=d.learning_rate, help=f"SGD ({d.learning_rate})")
    p.add_argument("--momentum", type=float, default=d.momentum, help=f"SGD ({d.momentum})")
    p.add_argument("--margin", type=float, default=d.margin, help=f"loss margin ({d.margin})")
    p.add_argument(
        "--hard",
        type=float,
        default=d.hard_fraction,
        metavar="FRACTION",
        help=f"fraction of triples with hard confusors ({d.hard_fraction})",
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"({d.seed})")


def _config(args) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        momentum=args.momentum,
        margin=args.margin,
        hard_fraction=args.hard,
        seed=args.seed,
    )


def _new_run_name(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def _model_path(args) -> Path:
    if args.model:
        return Path(args.model)
    if args.run:
        return runs_dir() / args.run / "model.npz"
    models = sorted(runs_dir().glob("*/model.npz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise FileNotFoundError(
            f"no trained model in {runs_dir()}: run `python -m capstone demo` or "
            "`python -m capstone train` first, or pass --model FILE"
        )
    return models[-1]


def _load_model(path: Path, ds: Dataset) -> ImageEmbedder:
    model = ImageEmbedder.load(path, d=ds.glove.dim)
    trained_on = model.info.get("data_fingerprint")
    if trained_on and trained_on != ds.data.fingerprint:
        print(
            f"warning: {path} was trained on other data (fingerprint {trained_on}, this data "
            f"{ds.data.fingerprint}): its validation split means nothing here",
            file=sys.stderr,
        )
    return model


def _evaluate(model: ImageEmbedder, ds: Dataset) -> dict:
    config = model.info.get("train", {})
    seed, val_fraction = config.get("seed", 0), config.get("val_fraction", 0.2)
    _, val = split_images(ds.data.n_images, val_fraction=val_fraction, seed=seed)
    return evaluation_report(model, ds.data, ds.caption_embeddings, val, seed=seed)


def _train(ds: Dataset, args, run: str, resume: bool):
    run_dir = runs_dir() / run
    print(f"training into {run_dir}", file=sys.stderr)
    return train(
        ds.data,
        ds.caption_embeddings,
        _config(args),
        run_dir=run_dir,
        resume=resume,
        info=ds.info(),
    ), run_dir


def cmd_train(args) -> int:
    if args.resume and not args.run:
        raise ValueError("--resume needs --run NAME (the run to continue)")
    ds = load_dataset(args.data, glove=args.glove, verbose=True)
    result, run_dir = _train(ds, args, args.run or _new_run_name("run"), args.resume)
    print(
        f"saved {run_dir / 'model.npz'}  (final val accuracy "
        f"{result.history[-1]['val_accuracy']:.3f})"
    )
    return 0


def cmd_evaluate(args) -> int:
    ds = load_dataset(args.data, glove=args.glove, verbose=not args.json)
    path = _model_path(args)
    report = _evaluate(_load_model(path, ds), ds)
    report["model"] = str(path)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"model: {path}")
        print(format_report(report))
    return 0


def _show_queries(ds: Dataset, model: ImageEmbedder, queries, k: int = 3) -> None:
    images = model.embed(ds.data.descriptors)
    for query in queries:
        _, ignored = ds.text.known_words(query)
        print(f'\nquery: "{query}"')
        if ignored:
            print(f"  ignored (IDF 0 or no GloVe vector): {', '.join(ignored)}")
        try:
            scores = images @ ds.text.embed_query(query)
        except ValueError as e:
            print(f"  {e}")
            continue
        for i in np.argsort(-scores)[:k]:
            caption = ds.data.caption_texts_of_image(i)[0]
            print(f"  {scores[i]:.3f}  image {ds.data.image_ids[i]}: {caption}")


def cmd_demo(args) -> int:
    start = time.perf_counter()
    ds = load_dataset(demo=True, demo_images=args.images, verbose=True)
    run = args.run or _new_run_name("demo")
    result, run_dir = _train(ds, args, run, resume=False)
    report = _evaluate(result.model, ds)
    print()
    print(format_report(report))
    _show_queries(ds, result.model, DEMO_QUERIES)
    (run_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    print(
        f"\nsaved {run_dir}/model.npz and metrics.json; demo took "
        f"{time.perf_counter() - start:.0f} s"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m capstone",
        description="Semantic image search over MS-COCO with MyGrad and MyNN.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="generate the embedded demo data if absent, train, evaluate, show queries",
        description="The whole capstone on the embedded demo dataset (generated captions and "
        "descriptors, real GloVe 6B 50-d vectors), in about a minute.",
    )
    p.add_argument(
        "--images",
        type=int,
        default=DEMO_IMAGES,
        help=f"demo size when it must be generated ({DEMO_IMAGES:,})",
    )
    p.add_argument("--run", metavar="NAME", help="run folder name (default: demo-TIMESTAMP)")
    _add_train_args(p, DEMO_EPOCHS)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "train",
        help="train the image embedding model",
        description="Train W (512 x d) on caption/image/confusor triples.",
    )
    _add_data_args(p)
    p.add_argument("--run", metavar="NAME", help="run folder name (default: run-TIMESTAMP)")
    p.add_argument("--resume", action="store_true", help="continue the run's last checkpoint")
    _add_train_args(p, TrainConfig().epochs)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="retrieval metrics of a trained model",
        description="Recall@1/5/10, median rank and MRR on 1,000-image "
        "validation pools, triple accuracy, against an untrained model and chance.",
    )
    _add_data_args(p)
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m capstone`` and the ``capstone`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
