"""The runs and the data: ``runs`` (every trained run), ``info`` (the data in use) and
``evaluate`` (a run's retrieval metrics, saved beside its model as ``metrics.json``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from capstone.common.archive import atomic_write
from capstone.dataset import load_dataset
from capstone.evaluation.metrics import format_report
from capstone.frontends.cli.args import (
    add_data_args,
    add_json_arg,
    add_model_args,
    add_student_arg,
    command,
    load_run,
)
from capstone.frontends.cli.output import Result, note, other_data_warnings
from capstone.runs import METRICS_FILE, Run, list_interrupted, list_runs, runs_folder

__all__ = [
    "add_listing_parsers",
    "add_parsers",
    "cmd_evaluate",
    "cmd_info",
    "cmd_runs",
    "save_metrics",
]


def add_parsers(sub) -> None:
    """The ``evaluate``, ``runs`` and ``info`` commands (in the order ``--help`` lists them)."""
    p = command(
        sub,
        "evaluate",
        cmd_evaluate,
        help="retrieval metrics of a trained model",
        description="Recall@1/5/10, median rank and MRR on 1,000-image "
        "validation pools, triple accuracy, against an untrained model and chance.",
    )
    add_data_args(p)
    add_model_args(p)
    add_student_arg(p)
    add_json_arg(p, "the metrics")


def add_listing_parsers(sub) -> None:
    """The ``runs`` and ``info`` commands (listed after the queries by ``--help``)."""
    p = command(
        sub,
        "runs",
        cmd_runs,
        help="the trained runs: name, date, data, recipe, epochs, R@1",
        description="Every run in the data home's runs folder, oldest first.",
    )
    add_json_arg(p, "them")

    p = command(
        sub,
        "info",
        cmd_info,
        help="the data in use: source, counts, GloVe, example image ids",
        description="What `capstone` would use: where the data comes from, how many images "
        "and captions, which word vectors, and a few image ids with a caption each.",
    )
    add_data_args(p)
    add_json_arg(p, "it")


def save_metrics(run: Run, report: dict) -> None:
    """``metrics.json`` beside a run's model (a report of the run: replaced by a newer one).

    Only for a run of the runs folder on its own data; a file that cannot be written is a
    warning (the report was printed anyway).
    """
    if not run.in_runs_dir or run.warnings:  # another data's figures are not the run's
        return
    report = {**report, "model_sha256": run.weights_sha256}
    path = run.path.parent / METRICS_FILE
    try:
        atomic_write(path, lambda f: f.write(json.dumps(report, indent=2).encode()), overwrite=True)
    except OSError as e:
        note(f"warning: could not write {path}: {e}")


def cmd_evaluate(*, as_json: bool, **source) -> Result:
    """``evaluate``: the metrics of the run that ``source`` (`load_run`'s flags) names."""
    run, ds = load_run(**source, verbose=not as_json)
    report = run.evaluate(ds)
    other_data_warnings([] if as_json else run.warnings)
    save_metrics(run, report)
    return Result((f"run {run.name}: {run.path}", format_report(report)), report)


def cmd_runs(*, as_json: bool) -> Result:
    """``runs``: every trained run, and every run interrupted before its model was saved,
    oldest first."""
    rows = []
    for run in list_runs():
        info = run.model.info
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
                "recipe": run.recipe or "?",
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
    folder = runs_folder()
    if not rows:
        return Result((f"no runs in {folder}: `python -m capstone demo` or `train` makes one",), [])
    head = f"{'name':28} {'date':16} {'data':14} {'recipe':7} {'epochs':>6} {'best':>4} {'R@1':>6}"
    lines = [head]
    for r in rows:
        r1 = f"{r['val_r1']:.1%}" if r["val_r1"] is not None else "-"
        best = r["best_epoch"] if r["best_epoch"] is not None else "-"
        interrupted = "  interrupted: no model yet" if r["status"] == "interrupted" else ""
        lines.append(
            f"{r['name']:28} {r['date']:16} {r['data']:14} {r['recipe']:7} {r['epochs']:>6} "
            f"{best:>4} {r1:>6}{interrupted}"
        )
    lines.append(
        f"(R@1: caption -> image on the run's validation pools, from `evaluate`; {folder})"
    )
    if stopped:
        lines.append("interrupted before their model was saved; continue with:")
        lines.extend(f"  {run.resume_command}" for run in stopped)
    return Result(tuple(lines), rows)


def _date(path: Path) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))


def cmd_info(*, data: str | None, glove: Path | None, as_json: bool) -> Result:
    """``info``: where the data comes from, its counts, its word vectors, example image ids."""
    ds = load_dataset(data, glove=glove, verbose=False)
    coco = ds.data
    rows = np.linspace(0, coco.n_images - 1, num=min(5, coco.n_images)).astype(int)
    examples = [
        {"image_id": int(coco.image_ids[i]), "caption": coco.caption_texts_of_image(i)[0].strip()}
        for i in rows
    ]
    facts = {
        "data_folder": str(ds.files.captions.parent),
        "source": ds.files.source,
        "demo": ds.files.is_demo,
        "images": coco.n_images,
        "captions": coco.n_captions,
        "dropped_images": coco.n_dropped_images,
        "dropped_captions": coco.n_dropped_captions,
        "descriptor_width": int(coco.descriptors.shape[1]),
        "data_fingerprint": coco.fingerprint,
        "glove": ds.glove.source,
        "glove_words": len(ds.glove),
        "glove_dim": ds.glove.dim,
        "idf_vocabulary": len(ds.text.idf),
        "examples": examples,
    }
    lines = [
        ds.describe(),
        f"descriptors: {facts['descriptor_width']} wide; data fingerprint {coco.fingerprint}",
        "example image ids (for similar, tags, rank):",
    ]
    lines.extend(f"  {e['image_id']}: {e['caption']}" for e in examples)
    return Result(tuple(lines), facts)
