"""Command line: ``python -m capstone COMMAND`` (demo, train, evaluate, search, similar, tags,
words, rank, runs, info, describe, index, serve, kit, grade).

A thin shell: it parses arguments (bad ones are refused before any data loads, naming the
flag), calls the library (`capstone.runs.Run` for everything a trained run does) and prints.
Runs live in ``<data home>/runs/<name>/`` (`capstone.data.paths.runs_dir`): ``model.npz``,
``checkpoint.npz`` (written each epoch; ``train --resume`` continues from it), ``metrics.json``
(written by ``evaluate`` and ``demo``) and ``database.npz`` (a cache). Commands that need a model
take ``--run NAME`` or ``--model PATH``; by default they use the newest run. User mistakes end
with ``error: ...`` and exit status 2, never a traceback; a bug keeps its traceback.

One module per family of commands, each with its parsers (``add_parsers``) and handlers
(``cmd_*``: flags in as keyword arguments, an `output.Result` out):

- `training`: train, demo (and `training.FLAGS`, the training flags' `TrainConfig` fields)
- `queries`: search, similar, tags, words, rank
- `runs`: evaluate, runs, info
- `photos`: describe, index
- `serve`: serve
- `course`: kit, grade (the course kit; its ``--student DIR``, taken by train, evaluate,
  search and serve, is in `args` and `training`)

`args` holds the argument types and flags they share, `output` everything that is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from capstone.common.checks import UnknownKey
from capstone.common.locks import FolderLocked
from capstone.frontends.cli import course, output, photos, queries, runs, serve, training
from capstone.frontends.cli.args import with_version
from capstone.photos.weights import WeightsUnavailable

__all__ = ["build_parser", "main"]

#: What a user's mistake raises (a bad flag value, a missing or unreadable file, an unknown
#: image id or word, a locked run, absent ResNet-18 weights): ``error: ...``, exit status 2.
USER_ERRORS = (OSError, ValueError, UnknownKey, FolderLocked, WeightsUnavailable)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each command's parser sets the ``handler`` that runs it."""
    parser = with_version(
        argparse.ArgumentParser(
            prog="python -m capstone",
            description="Semantic image search over MS-COCO with MyGrad and MyNN.",
        )
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # in the order --help lists them
    training.add_parsers(sub)
    runs.add_parsers(sub)
    queries.add_parsers(sub)
    runs.add_listing_parsers(sub)
    photos.add_parsers(sub)
    serve.add_parsers(sub)
    course.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m capstone`` and the ``capstone`` command: parse ``argv``, run
    the command's handler with its flags, print its result; the exit status."""
    flags = vars(build_parser().parse_args(argv))
    del flags["command"]
    handler = flags.pop("handler")
    try:
        with warnings.catch_warnings():
            # the library warns about optional things (an unwritable cache): one plain line
            warnings.showwarning = output.show_warning
            output.show(handler(**flags), as_json=flags.get("as_json", False))
            sys.stdout.flush()  # here, so that a closed pipe is seen below, not at exit
            return 0
    except BrokenPipeError:
        # The reader went away (`... | head -1`): stop quietly, as Unix tools do. Python's
        # docs: point stdout at devnull, so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except USER_ERRORS as e:
        output.note(f"error: {output.error_message(e)}")
        return 2
    except KeyboardInterrupt as e:
        hint = e.resume_hint if isinstance(e, training.TrainingInterrupted) else ""
        output.note(f"\ninterrupted{hint}")
        return 130
