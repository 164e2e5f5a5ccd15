"""Everything the command line prints, in one place.

A command's handler returns a `Result` (its text, its JSON, notes for stderr) and `show`
prints it; what a handler says while it works (progress, warnings) goes through `note`.
Results go to stdout, everything else to stderr, so that ``--json`` output pipes cleanly.
"""

from __future__ import annotations

import errno
import json
import sys
from dataclasses import asdict, dataclass

from capstone.search.engine import SearchResult

__all__ = [
    "Result",
    "announce",
    "error_message",
    "ignored_line",
    "note",
    "other_data_warnings",
    "result_lines",
    "result_rows",
    "show",
    "show_warning",
    "word_rows",
]


@dataclass(frozen=True)
class Result:
    """What a command prints when it is done.

    Attributes
    ----------
    lines : tuple of str
        Printed one a line on stdout (without --json).
    data : object
        Printed as indented JSON on stdout instead (with --json); None: nothing.
    notes : tuple of str
        Printed on stderr after either, one a line (e.g. where a file was written).
    """

    lines: tuple[str, ...] = ()
    data: object = None
    notes: tuple[str, ...] = ()


def show(result: Result, *, as_json: bool) -> None:
    """Print ``result``: its JSON if ``as_json``, else its lines; then its notes."""
    if as_json:
        print(json.dumps(result.data, indent=2))
    else:
        for line in result.lines:
            print(line)
    for message in result.notes:
        note(message)


def note(message: str) -> None:
    """One line on stderr: progress, a skipped file, a warning."""
    print(message, file=sys.stderr)


def announce(message: str) -> None:
    """One line on stdout at once, before a command that runs until stopped (serve)."""
    print(message, flush=True)


def other_data_warnings(warnings: list[str]) -> None:
    """What `capstone.runs.Run.check` accepted under ``--other-data`` (with --json they go in
    the JSON instead: the caller passes none)."""
    if warnings:
        for warning in warnings:
            note(f"warning: --other-data: {warning}")
        note("warning: the run's validation split means nothing on this data")


def ignored_line(ignored: list[str], indent: str = "") -> list[str]:
    """The line naming the query's words that add nothing, if any (as a list: 0 or 1 line)."""
    return [f"{indent}ignored (IDF 0 or no GloVe vector): {', '.join(ignored)}"] if ignored else []


def result_lines(results: list[SearchResult], captions: int, ignored: list[str]) -> list[str]:
    """Search results as text: rank, score, id and URL, then ``captions`` captions each."""
    lines = ignored_line(ignored)
    for i, r in enumerate(results, 1):
        lines.append(f"#{i:<3} {r.score:6.3f}  image {r.image_id}  {r.url}")
        lines.extend(f"       {caption.strip()}" for caption in r.captions[:captions])
    return lines


def result_rows(results: list[SearchResult]) -> list[dict]:
    """Search results as JSON rows, ranked from 1."""
    return [{"rank": i + 1, **asdict(r)} for i, r in enumerate(results)]


def word_rows(pairs: list[tuple[str, float]]) -> list[dict]:
    """(word, score) pairs (tags, words) as JSON rows."""
    return [{"word": w, "score": s} for w, s in pairs]


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """`warnings.showwarning` for the command line: the library's warnings (an unwritable
    cache, say) as one plain line, without the source line."""
    note(f"warning: {message}")


def error_message(e: Exception) -> str:
    """An error as one line for the user. An OSError of the system (errno and file) names the
    file and what failed: ``could not write .../checkpoint.npz: No space left on device``."""
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        full = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
        return f"{'could not write ' if full else ''}{e.filename}: {e.strerror}"
    return str(e)
