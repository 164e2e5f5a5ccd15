"""The course kit (`capstone.course`): ``kit`` (a starter kit for students) and ``grade``
(points per task, feedback, a gradebook).

The kit's ``--student DIR`` flag is shared by train, evaluate, search and serve: it lives in
`capstone.frontends.cli.args` (`add_student_arg`, and `load_run`, which plugs the student's
functions into the run), and ``train --student`` in `capstone.frontends.cli.training`.
"""

from __future__ import annotations

import time
from pathlib import Path

from capstone.course.student import E2E_BAR, GRADE_DEMO_IMAGES, MODULE
from capstone.frontends.cli.args import add_json_arg, command, integer, student_folder
from capstone.frontends.cli.output import Result

__all__ = ["add_parsers", "cmd_grade", "cmd_kit"]


def add_parsers(sub) -> None:
    """The ``kit`` and ``grade`` commands."""
    p = command(
        sub,
        "kit",
        cmd_kit,
        help="write a course kit: stubs for students, public checks, a notebook",
        description=f"Write {MODULE}.py (one stub per task, raising NotImplementedError), "
        f"test_{MODULE}.py (the public checks: pytest), capstone_kit.ipynb and README.md "
        "into DIR (new or empty). No solution is written.",
    )
    p.add_argument("folder", metavar="DIR")

    p = command(
        sub,
        "grade",
        cmd_grade,
        help="grade students' kits: points per task, feedback, gradebook",
        description=f"Check every task of each DIR's {MODULE}.py against capstone's "
        "reference on Hypothesis-drawn inputs, in a child process with a time limit per task, "
        f"then the end-to-end check (R@10 >= {E2E_BAR} on a {GRADE_DEMO_IMAGES:,}-image demo).",
    )
    p.add_argument("folders", nargs="+", type=student_folder, metavar="DIR")
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write <student>.json per student and gradebook.csv here (never overwritten)",
    )
    p.add_argument("--workers", type=integer(1), default=2, help="submissions at a time (2)")
    p.add_argument("--feedback", action="store_true", help="print every student's feedback")
    add_json_arg(p, "the results")


def _checks():
    """The grading modules, which need Hypothesis (imported only by kit and grade)."""
    try:
        from capstone.course import grade, kit
    except ModuleNotFoundError as e:
        if e.name != "hypothesis":
            raise
        raise ValueError(
            "the course's checks need Hypothesis: pip install 'capstone[course]' "
            "(or pip install hypothesis)"
        ) from None
    return grade, kit


def cmd_kit(*, folder: str) -> Result:
    """``kit``: the kit's files written into ``folder`` (new or empty), one path a line."""
    written = _checks()[1].write_kit(folder)
    return Result(
        tuple(map(str, written)),
        notes=(f"students: open {Path(folder) / MODULE}.py, then run pytest in that folder",),
    )


def cmd_grade(
    *, folders: list[Path], out: Path | None, workers: int, feedback: bool, as_json: bool
) -> Result:
    """``grade``: the results of each kit in ``folders``, ``workers`` at a time: one
    student's feedback (every student's with ``feedback``), else one line each; with ``out``,
    ``<student>.json`` each and ``gradebook.csv`` written there."""
    start = time.perf_counter()
    grading = _checks()[0]
    if out is not None:  # refuse a results folder that would be overwritten, first
        grading.check_results_folder(out, [grading.student_name(f) for f in folders])
    results = grading.grade(folders, workers=workers)
    if len(results) == 1 or feedback:
        lines = ["\n\n".join(map(grading.feedback, results))]
    else:
        lines = [
            f"{r['student']:<24} {r['points']:>3}/{r['max_points']} ({r['percent']}%)"
            + ("  FLAGGED" if r["flagged"] else "")
            for r in results
        ]
    notes = []
    if out is not None:
        notes.append(f"wrote {len(results)} JSON files and {grading.write_results(results, out)}")
    notes.append(f"graded {len(results)} in {time.perf_counter() - start:.1f} s "
                 f"({workers} at a time)")  # fmt: skip
    return Result(tuple(lines), results, tuple(notes))
