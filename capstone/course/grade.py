"""Grading: every task of a submission checked in a child process, points, feedback, gradebook.

One child process (multiprocessing, spawn) imports the student's module and runs the checks
one after another, reporting each to the parent as it starts and ends. The parent holds every
task to its time limit: a task that runs over, or a child that dies (a crash, ``os._exit``,
a segfault), costs that task only; the parent kills the child and starts a new one for the
tasks left. Submissions are graded ``workers`` at a time (threads, each waiting on its own
child).

Scores: each task's points (`capstone.course.tasks.TASKS`) when its check passes, else 0;
the end-to-end check `E2E_POINTS` when the student's whole pipeline reaches `E2E_BAR` on the
grading demo. A task whose function is capstone's own scores 0 and is flagged, as is any
import of ``capstone`` in the student's source.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import json
import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from capstone.common.spreadsheet import spreadsheet_text
from capstone.data.paths import cache_dir

from .compare import TaskFailed
from .student import (
    E2E_BAR,
    E2E_CONFIG,
    GRADE_DEMO_IMAGES,
    MODULE,
    StudentError,
    end_to_end,
    student_file,
)
from .tasks import E2E, TASKS, isolated, task

__all__ = [
    "E2E_POINTS",
    "MAX_POINTS",
    "borrowed_tasks",
    "capstone_imports",
    "check_results_folder",
    "feedback",
    "grade",
    "grade_demo",
    "grade_submission",
    "run_check",
    "student_name",
    "write_results",
]

E2E_POINTS = 20
MAX_POINTS = sum(t.points for t in TASKS) + E2E_POINTS
#: Seconds a task may take (the checks of a correct solution take well under one), and the
#: end-to-end check (about 3 s for the solved kit), and importing the module.
TASK_SECONDS = 10.0
E2E_SECONDS = 60.0
IMPORT_SECONDS = 20.0
UNIT_TOLERANCE = 1e-3  # float32 unit rows


def capstone_imports(path: str | os.PathLike) -> list[str]:
    """The lines of the student's source that import ``capstone`` (AST, not text: comments and
    strings do not count). Any such import is flagged: the kit needs none of capstone."""
    source = Path(path).read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # the import fails and says so
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and (
            getattr(node.func, "id", "") == "__import__"
            or getattr(node.func, "attr", "") == "import_module"
        ):
            names = [a.value for a in node.args if isinstance(a, ast.Constant)]
        else:
            continue
        if any(str(n).split(".")[0] == "capstone" for n in names):
            found.append(f"line {node.lineno}: {ast.get_source_segment(source, node)}")
    return found


def borrowed_tasks(module) -> list[str]:
    """Tasks whose function in ``module`` is capstone's own (defined in a capstone module)."""
    return [
        t.name
        for t in TASKS
        if str(getattr(getattr(module, t.name, None), "__module__", "")).split(".")[0]
        == "capstone"
    ]


def grade_demo() -> Path:
    """The grading demo (`GRADE_DEMO_IMAGES` generated images) in the cache, made if absent."""
    folder = cache_dir() / f"course-demo-{GRADE_DEMO_IMAGES}"
    from capstone.data.minicoco import generate  # each file is written atomically

    if not (folder / "captions_train2014.json").is_file() or not (
        folder / "resnet18_features.pkl"
    ).is_file():
        generate(folder, GRADE_DEMO_IMAGES, overwrite=True)
    return folder


def _e2e(module, demo: str) -> None:
    from capstone.dataset import load_dataset

    result = end_to_end(module, load_dataset(demo, embed_captions=False))
    low, high = result["norms"]
    what = (f"your pipeline (your text embedding, lookups, triples, training step and image "
            f"embedding; {E2E_CONFIG.epochs} epochs on the {GRADE_DEMO_IMAGES:,}-image grading "
            f"demo)")  # fmt: skip
    if result["r10"] < E2E_BAR:
        raise TaskFailed(
            f"{what} reaches R@10 {result['r10']:.3f} on the validation images; the bar is "
            f"{E2E_BAR} (a correct kit: about 0.69; chance: 0.05)"
        )
    if abs(low - 1) > UNIT_TOLERANCE or abs(high - 1) > UNIT_TOLERANCE:
        raise TaskFailed(f"{what} reaches R@10 {result['r10']:.3f}, but its image embeddings "
                         f"have norms from {low:.4g} to {high:.4g}, not 1: the database's "
                         "scores are cosines only for unit vectors")  # fmt: skip


def run_check(module, name: str, demo: str | None = None) -> str | None:
    """Check one task of the loaded ``module``; the feedback when it fails, else None.

    ``demo`` (the grading demo's folder) is needed for the end-to-end check only.
    """
    if name == E2E:
        try:
            _e2e(module, demo)
        except TaskFailed as e:
            return str(e)
        except StudentError as e:  # names the task whose function failed in the pipeline
            return f"the pipeline stopped at {e}"
        except Exception as e:
            return f"the pipeline failed: {type(e).__name__}: {e}"
        return None
    if name in borrowed_tasks(module):
        f = getattr(module, name)
        return (f"{MODULE}.{name} is capstone's own {f.__module__}.{f.__name__}: write your own "
                "(flagged)")  # fmt: skip
    f = getattr(module, name, None)
    if not callable(f):
        return f"{MODULE}.py has no function {name}"
    try:
        with isolated(module, name):
            task(name).check(f)
    except TaskFailed as e:
        if "raised NotImplementedError" in str(e):
            return f"not written yet: {MODULE}.{name} still raises NotImplementedError"
        return str(e)
    except NotImplementedError:
        return f"not written yet: {MODULE}.{name} still raises NotImplementedError"
    except Exception as e:
        return f"{MODULE}.{name} failed: {type(e).__name__}: {e}"
    return None


def _worker(conn, folder: str, demo: str, names: list[str]) -> None:
    """Child process: import the module, then check ``names`` in order, reporting each."""
    from threadpoolctl import threadpool_limits

    from .student import load_student

    quiet = open(os.devnull, "w")  # what the student prints is not feedback
    with threadpool_limits(1), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        try:
            module = load_student(folder)
        except (StudentError, OSError) as e:
            conn.send(("import_failed", str(e)))
            return
        for name in names:
            conn.send(("start", name))
            conn.send(("done", name, run_check(module, name, demo)))


def _limit(name: str) -> float:
    return E2E_SECONDS if name == E2E else TASK_SECONDS


def _run_children(folder: Path, demo: Path) -> dict[str, str | None]:
    """Feedback (None: passed) of every task, each within its time limit (module docstring)."""
    context = multiprocessing.get_context("spawn")
    remaining = [t.name for t in TASKS] + [E2E]
    feedback: dict[str, str | None] = {}
    while remaining:
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_worker, args=(send, str(folder), str(demo), remaining))
        child.start()
        send.close()
        current, deadline = None, time.monotonic() + IMPORT_SECONDS
        try:
            while remaining:
                if not receive.poll(max(0.0, deadline - time.monotonic())):
                    problem = (f"took more than {_limit(current):g} s (time limit): stopped"
                               if current else f"importing {MODULE}.py took more than "
                               f"{IMPORT_SECONDS:g} s: stopped")  # fmt: skip
                    raise TimeoutError(problem)
                try:
                    message = receive.recv()
                except EOFError:
                    child.join(5)
                    raise ChildProcessError(
                        f"the process running it died (exit code {child.exitcode})"
                    ) from None
                if message[0] == "import_failed":
                    feedback.update(dict.fromkeys(remaining, message[1]))
                    remaining = []
                elif message[0] == "start":
                    current, deadline = message[1], time.monotonic() + _limit(message[1])
                else:
                    feedback[message[1]] = message[2]
                    remaining.remove(message[1])
                    current, deadline = None, time.monotonic() + _limit(E2E)
        except (TimeoutError, ChildProcessError) as e:
            if current is None:  # while importing: every task is lost
                feedback.update(dict.fromkeys(remaining, f"{MODULE}.py: {e}"))
                remaining = []
            else:
                feedback[current] = f"{current}: {e}"
                remaining.remove(current)
        finally:
            if child.is_alive():
                child.kill()
            child.join()
            receive.close()
    return feedback


def student_name(folder: str | os.PathLike) -> str:
    """A submission's name in the results: its folder's name."""
    return Path(folder).resolve().name


def grade_submission(folder: str | os.PathLike, demo: str | os.PathLike | None = None) -> dict:
    """Grade one student folder.

    Returns
    -------
    dict
        ``student`` (the folder's name), ``folder``, ``points``, ``max_points``, ``percent``,
        ``seconds``, ``flagged`` (lines importing capstone, and tasks that are capstone's own),
        ``tasks``: one record per task and the end-to-end check: name, points, max_points,
        passed, feedback.
    """
    start = time.perf_counter()
    folder = Path(folder)
    path = student_file(folder)
    demo = Path(demo) if demo is not None else grade_demo()
    feedback = _run_children(folder, demo)
    tasks = [
        {"task": name, "points": 0 if feedback[name] else points, "max_points": points,
         "passed": feedback[name] is None, "feedback": feedback[name]}
        for name, points in [*((t.name, t.points) for t in TASKS), (E2E, E2E_POINTS)]
    ]  # fmt: skip
    flagged = capstone_imports(path) + [
        f"{t['task']}: capstone's own function" for t in tasks
        if t["feedback"] and t["feedback"].endswith("(flagged)")
    ]  # fmt: skip
    points = sum(t["points"] for t in tasks)
    return {
        "student": student_name(folder),
        "folder": str(folder),
        "points": points,
        "max_points": MAX_POINTS,
        "percent": round(100 * points / MAX_POINTS, 1),
        "flagged": flagged,
        "seconds": round(time.perf_counter() - start, 2),
        "tasks": tasks,
    }


def grade(folders, *, workers: int = 2, demo=None) -> list[dict]:
    """`grade_submission` of every folder, ``workers`` at a time, in the order given."""
    folders = [Path(f) for f in folders]
    for f in folders:
        student_file(f)  # every folder is checked before any grading starts
    demo = demo if demo is not None else grade_demo()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda f: grade_submission(f, demo), folders))


def feedback(result: dict) -> str:
    """A student's grade as they read it: a line per task, the failing example under it."""
    lines = [f"{MODULE}.py in {result['folder']}"]
    for t in result["tasks"]:
        status = "passed" if t["passed"] else "FAILED"
        lines.append(f"  {t['task']:<20} {t['points']:>2}/{t['max_points']:<2}  {status}")
        if t["feedback"]:
            lines += ["      " + line for line in t["feedback"].splitlines()]
    for flag in result["flagged"]:
        lines.append(f"  flagged: {flag}")
    lines.append(f"total {result['points']}/{result['max_points']} ({result['percent']}%)")
    return "\n".join(lines)


def check_results_folder(out: str | os.PathLike, students: list[str]) -> None:
    """Refuse results that would overwrite a file in ``out``, or two students of one name.

    Raises
    ------
    ValueError, FileExistsError
    """
    out = Path(out)
    if len(set(students)) != len(students):
        twice = sorted({n for n in students if students.count(n) > 1})
        raise ValueError(f"two submission folders are named {twice[0]!r}: give them distinct names")
    files = [out / f"{n}.json" for n in students] + [out / "gradebook.csv"]
    exist = [str(f) for f in files if f.exists()]
    if exist:
        raise FileExistsError(f"{exist[0]} exists: choose a new --out folder (nothing replaced)")


def write_results(results: list[dict], out: str | os.PathLike) -> Path:
    """``<out>/<student>.json`` per student and ``<out>/gradebook.csv``; returns the CSV.

    Nothing is overwritten (`check_results_folder`, before any file is written). CSV text
    cells are defused for spreadsheets (`capstone.common.spreadsheet.spreadsheet_text`).
    """
    out = Path(out)
    check_results_folder(out, [r["student"] for r in results])
    out.mkdir(parents=True, exist_ok=True)
    for r in results:
        (out / f"{r['student']}.json").write_text(json.dumps(r, indent=2) + "\n")
    text = io.StringIO()
    writer = csv.writer(text)
    task_names = [t["task"] for t in results[0]["tasks"]] if results else []
    writer.writerow(["student", "points", "max_points", "percent", "flagged", *task_names])
    for r in results:
        writer.writerow([spreadsheet_text(r["student"]), r["points"], r["max_points"],
                         r["percent"], spreadsheet_text("; ".join(r["flagged"])),
                         *(t["points"] for t in r["tasks"])])  # fmt: skip
    (out / "gradebook.csv").write_text(text.getvalue())
    return out / "gradebook.csv"
