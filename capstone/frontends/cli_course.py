"""Command line of the course kit: ``kit`` and ``grade``, and ``--student DIR`` for ``train``,
``evaluate``, ``search`` and ``serve`` (`capstone.course`).

``capstone.frontends.cli`` registers these: `add_parsers` adds the two commands,
`add_student_arg` the flag, `use_student` turns a run and dataset into the student's (for
every command that loads a run) and `cmd_train_student` trains with the student's code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from capstone.course.student import (
    E2E_BAR,
    GRADE_DEMO_IMAGES,
    MODULE,
    STUDENT_LEARNING_RATE,
    StudentRun,
    load_student,
    student_dataset,
    student_file,
    train_student,
)
from capstone.dataset import load_dataset
from capstone.runs import MODEL_FILE, runs_folder
from capstone.training.recipes import TrainConfig
from capstone.training.train import check_run_folder

__all__ = ["add_parsers", "add_student_arg", "cmd_train_student", "use_student"]


def _student_folder(text: str) -> Path:
    """An argparse type: a folder holding ``my_capstone.py``."""
    try:
        student_file(text)
    except FileNotFoundError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return Path(text).expanduser()


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_student_arg(p: argparse.ArgumentParser) -> None:
    """``--student DIR``: run the student's functions where they fit (`capstone.course`)."""
    p.add_argument(
        "--student",
        type=_student_folder,
        metavar="DIR",
        help=f"use the functions of DIR/{MODULE}.py (a course kit) in the pipeline: text and "
        "image embedding, training step, top-k query",
    )


def use_student(args, run, ds):
    """``(run, ds)`` with the student's functions when ``--student`` was given, else as given.

    Missing or failing functions stop the command with an error naming the task.
    """
    folder = getattr(args, "student", None)
    if folder is None:
        return run, ds
    module = load_student(folder)
    return StudentRun.of(run, module), student_dataset(ds, module)


#: train flags that --student does not use (it trains the course recipe with plain SGD)
_NOT_WITH_STUDENT = {
    "recipe": "--recipe",
    "optimizer": "--optimizer",
    "momentum": "--momentum",
    "hard": "--hard",
    "both_directions": "--both-directions",
    "warmup": "--warmup",
    "text_map": "--text-map",
    "select_images": "--select-images",
    "patience": "--patience",
}


def cmd_train_student(args, new_run_name) -> int:
    """``train --student DIR``: the course recipe through the student's ``coco_lookups``,
    ``make_triples``, ``train_step``, ``image_embedding`` and text embedding.

    ``new_run_name(prefix)`` makes a fresh run folder name (the CLI's own rule).
    """
    for attr, flag in _NOT_WITH_STUDENT.items():
        if getattr(args, attr, None) not in (None, False):
            raise ValueError(
                f"{flag}: training with --student runs the course recipe through your "
                "train_step (plain SGD): leave it out"
            )
    if args.resume:
        raise ValueError("--resume: training with --student keeps no checkpoint to resume")
    given = {"epochs": args.epochs, "batch_size": args.batch_size, "margin": args.margin,
             "seed": args.seed}  # fmt: skip
    config = TrainConfig(
        recipe="course",
        learning_rate=args.lr if args.lr is not None else STUDENT_LEARNING_RATE,
        **{k: v for k, v in given.items() if v is not None},
    )
    module = load_student(args.student)  # before the data: an import error is said at once
    if args.run:
        check_run_folder(runs_folder() / args.run, False)
    ds = student_dataset(load_dataset(args.data, glove=args.glove, verbose=True), module,
                         embed_captions=True)  # fmt: skip
    name = args.run or new_run_name("student")
    run_dir = runs_folder() / name
    run_dir.mkdir(parents=True, exist_ok=True)
    source = str(student_file(args.student).resolve())
    print(f"training into {run_dir} with {source}", file=sys.stderr)
    model, _ = train_student(
        module,
        ds,
        config,
        info={**ds.info(), "student": source},
        log=lambda epoch, loss: print(f"epoch {epoch}: loss {loss:.4f}", file=sys.stderr),
    )
    model.save(run_dir / MODEL_FILE)
    print(f"saved {run_dir / MODEL_FILE} (trained by {source})")
    return 0


def _checks():
    """The grading modules, which need Hypothesis (imported only by kit and grade)."""
    try:
        from capstone.course import grade, kit
    except ModuleNotFoundError as e:
        if e.name != "hypothesis":
            raise
        raise ValueError("the course's checks need Hypothesis: pip install hypothesis") from None
    return grade, kit


def cmd_kit(args) -> int:
    for path in _checks()[1].write_kit(args.folder):
        print(path)
    print(f"students: open {Path(args.folder) / MODULE}.py, then run pytest in that folder",
          file=sys.stderr)  # fmt: skip
    return 0


def cmd_grade(args) -> int:
    start = time.perf_counter()
    grading = _checks()[0]
    if args.out is not None:  # refuse a results folder that would be overwritten, first
        grading.check_results_folder(args.out, [grading.student_name(f) for f in args.folders])
    results = grading.grade(args.folders, workers=args.workers)
    if args.json:
        print(json.dumps(results, indent=2))
    elif len(results) == 1 or args.feedback:
        print("\n\n".join(map(grading.feedback, results)))
    else:
        for r in results:
            flag = "  FLAGGED" if r["flagged"] else ""
            print(f"{r['student']:<24} {r['points']:>3}/{r['max_points']} ({r['percent']}%){flag}")
    if args.out is not None:
        csv = grading.write_results(results, args.out)
        print(f"wrote {len(results)} JSON files and {csv}", file=sys.stderr)
    print(f"graded {len(results)} in {time.perf_counter() - start:.1f} s "
          f"({args.workers} at a time)", file=sys.stderr)  # fmt: skip
    return 0


def add_parsers(subparsers, command=None) -> None:
    """Add ``kit`` and ``grade`` to ``subparsers``; ``command(name, **kwargs)`` makes a
    subcommand's parser (default ``subparsers.add_parser``)."""
    command = command or subparsers.add_parser
    p = command(
        "kit",
        help="write a course kit: stubs for students, public checks, a notebook",
        description=f"Write {MODULE}.py (one stub per task, raising NotImplementedError), "
        f"test_{MODULE}.py (the public checks: pytest), capstone_kit.ipynb and README.md "
        "into DIR (new or empty). No solution is written.",
    )
    p.add_argument("folder", metavar="DIR")
    p.set_defaults(func=cmd_kit)

    p = command(
        "grade",
        help="grade students' kits: points per task, feedback, gradebook",
        description="Check every task of each DIR's my_capstone.py against capstone's "
        "reference on Hypothesis-drawn inputs, in a child process with a time limit per task, "
        f"then the end-to-end check (R@10 >= {E2E_BAR} on a {GRADE_DEMO_IMAGES:,}-image demo).",
    )
    p.add_argument("folders", nargs="+", type=_student_folder, metavar="DIR")
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write <student>.json per student and gradebook.csv here (never overwritten)",
    )
    p.add_argument("--workers", type=_workers, default=2, help="submissions at a time (2)")
    p.add_argument("--feedback", action="store_true", help="print every student's feedback")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_grade)
