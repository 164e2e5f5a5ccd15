"""What the commands share: argument types (a bad value is refused by argparse, naming the
flag, before any data loads), the flags several commands take, and what those flags mean
(`load_run`: the run that ``--run``/``--model`` name, with the data of ``--data``/``--glove``,
and with a student's functions under ``--student``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from capstone import __version__
from capstone.common.checks import count
from capstone.course.student import MODULE, StudentRun, load_student, student_dataset, student_file
from capstone.dataset import Dataset, load_dataset
from capstone.runs import Run
from capstone.search.engine import plus_minus
from capstone.search.terms import Term, parse_terms, photo_term

__all__ = [
    "add_data_args",
    "add_json_arg",
    "add_model_args",
    "add_student_arg",
    "add_weights_arg",
    "coco_id",
    "command",
    "folder_name",
    "input_file",
    "integer",
    "load_run",
    "output_file",
    "query_terms",
    "run_name",
    "student_folder",
    "with_version",
]


def integer(least: int):
    """An argparse type: an integer >= ``least`` (`capstone.common.checks.count` decides;
    the message is argparse's, after the flag: ``argument -k: must be 1 or more, got 0``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        try:
            return count("value", value, least=least)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {least} or more, got {value}") from None

    return parse


def coco_id(text: str) -> int:
    """An argparse type: a COCO image id (a non-negative 64-bit integer)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an image id is an integer, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"no image has the id {value}: ids lie in 0..2**63-1")
    return value


def folder_name(what: str):
    """An argparse type: the name of a ``what`` (run, collection), one folder or file name
    inside its folder (no path: nothing outside it is ever written)."""

    def parse(text: str) -> str:
        if not text or text.startswith(".") or "/" in text or "\\" in text:
            raise argparse.ArgumentTypeError(
                f"{text!r}: a {what} name is one folder name (no '/', not starting with '.')"
            )
        return text

    return parse


run_name = folder_name("run")


def input_file(text: str) -> Path:
    """An argparse type: a file to read (every file flag: --glove, --weights, --image, ...)."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, expected a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def output_file(suffix: str, *, replace: bool):
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


def student_folder(text: str) -> Path:
    """An argparse type: a course kit's folder, one holding ``my_capstone.py``
    (`capstone.course.student.student_file` decides)."""
    try:
        student_file(text)
    except FileNotFoundError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return Path(text).expanduser()


def with_version(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``p`` with ``--version`` (every command has it, as the README says)."""
    p.add_argument("--version", action="version", version=f"capstone {__version__}")
    return p


def command(sub, name: str, handler, **kwargs) -> argparse.ArgumentParser:
    """The parser of command ``name``, run by ``handler``: `capstone.frontends.cli.main` calls
    ``handler(**flags)`` with the parsed flags as keyword arguments."""
    p = with_version(sub.add_parser(name, **kwargs))
    p.set_defaults(handler=handler)
    return p


def add_json_arg(p: argparse.ArgumentParser, what: str) -> None:
    """``--json``: print ``what`` as JSON (handlers receive it as ``as_json``)."""
    p.add_argument("--json", dest="as_json", action="store_true", help=f"print {what} as JSON")


def add_data_args(p: argparse.ArgumentParser) -> None:
    """``--data`` and ``--glove``: the data to load (`capstone.dataset.load_dataset`)."""
    p.add_argument(
        "--data",
        metavar="DIR",
        help="folder with captions_train2014.json and resnet18_features.pkl "
        "(default: $CAPSTONE_DATA, then the cogworks-data cache, then the embedded demo)",
    )
    p.add_argument(
        "--glove",
        type=input_file,
        metavar="FILE",
        help="GloVe in word2vec text format (default: the data folder's "
        "glove.6B.200d.txt.w2v, else the embedded GloVe 6B 50-d)",
    )


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--run`` or ``--model``, and ``--other-data`` (`load_run`)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--run", type=run_name, metavar="NAME", help="use the model of this run (the newest)"
    )
    group.add_argument("--model", metavar="FILE", help="use this model.npz")
    p.add_argument(
        "--other-data",
        action="store_true",
        help="use the run on data or word vectors other than its own (its validation split "
        "then means nothing; the output says so)",
    )


def add_weights_arg(p: argparse.ArgumentParser) -> None:
    """``--weights``: the ResNet-18 that describes photos (`capstone.frontends.cli.photos`)."""
    p.add_argument(
        "--weights",
        type=input_file,
        metavar="FILE",
        help="ResNet-18 weights: torchvision's resnet18-f37072fd.pth or a .safetensors file "
        "(default: the cached download; downloaded once when online)",
    )


def add_student_arg(p: argparse.ArgumentParser) -> None:
    """``--student DIR``: run a student's functions where they fit (`capstone.course.student`;
    train, evaluate, search and serve take it)."""
    p.add_argument(
        "--student",
        type=student_folder,
        metavar="DIR",
        help=f"use the functions of DIR/{MODULE}.py (a course kit) in the pipeline: text and "
        "image embedding, training step, top-k query",
    )


def load_run(
    *,
    run: str | None,
    model: str | None,
    data: str | None,
    glove: Path | None,
    other_data: bool,
    verbose: bool,
    embed_captions: bool = True,
    student: Path | None = None,
) -> tuple[Run, Dataset]:
    """The run that ``--model``, ``--run`` or else the newest run names, with its data.

    The model file is found before the data loads (which can take a while), then the run is
    checked against the data: other data or word vectors stop here unless ``--other-data``.
    ``verbose``: the data's loading progress on stderr (off with --json). ``student``: the
    folder of ``--student``; the run and data then embed, rank and answer queries with the
    student's functions (a missing or failing one is an error naming its task).
    """
    found = Run.load(model or run)
    module = None if student is None else load_student(student)  # an import error: at once
    ds = load_dataset(data, glove=glove, verbose=verbose, embed_captions=embed_captions)
    found.check(ds, other_data=other_data)
    if module is None:
        return found, ds
    return StudentRun.of(found, module), student_dataset(ds, module)


def query_terms(query: str | None, add: list[str], subtract: list[str]) -> list[Term]:
    """The terms of a QUERY (`capstone.search.terms`), then one per ``--add`` and
    ``--subtract`` (words, or a photo file: each flag's value is one term)."""
    terms = [] if query is None else parse_terms(query, photos=True)
    return terms + [(w, photo_term(t) or t) for w, t in plus_minus(add, subtract)]
