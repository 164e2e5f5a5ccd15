"""The terminal progress bar: redrawn on a terminal at most 10 times a second, quiet elsewhere."""

from __future__ import annotations

import io

import pytest

from capstone.common import progress
from capstone.common.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch):
    """``clock.now``: the seconds `time.perf_counter` returns in the progress module."""

    class Clock:
        now = 100.0

    monkeypatch.setattr(progress.time, "perf_counter", lambda: Clock.now)
    return Clock


def test_a_terminal_gets_a_bar_redrawn_in_place_then_cleared_for_the_summary(clock):
    out = _Terminal()
    bar = Progress(stream=out, width=10)
    assert bar.live
    bar.start("indexing", 8)
    clock.now += 2.0
    bar.update(2)
    assert out.getvalue() == "\rindexing [##--------] 2/8  1/s  eta 6 s"
    bar.finish("indexed 8 photos")
    assert out.getvalue().endswith("\r\033[K" + "indexed 8 photos\n")


def test_redraws_at_most_ten_times_a_second_but_always_the_last(clock):
    out = _Terminal()
    bar = Progress(stream=out, width=4)
    clock.now = 0.0
    bar.start("x", 4000)
    clock.now = 0.05
    bar.update(1)  # 0.05 s after the start: skipped
    assert out.getvalue() == ""
    clock.now = 0.1
    bar.update(2)  # 0.1 s: drawn
    assert out.getvalue() == "\rx [----] 2/4000  20/s  eta 200 s"
    clock.now = 0.11
    bar.update(4000)  # done: drawn however soon
    assert out.getvalue().endswith("\rx [####] 4000/4000  36,364/s  eta 0 s")


@pytest.mark.parametrize(
    ("stream", "enabled", "expected"),
    [(io.StringIO, True, "done\n"), (_Terminal, False, "")],
    ids=["not-a-terminal-gets-the-summary-only", "disabled-writes-nothing-even-on-a-terminal"],
)
def test_no_bar_is_drawn(clock, stream, enabled, expected):
    out = stream()
    bar = Progress(enabled=enabled, stream=out)
    assert not bar.live
    bar.start("x", 3)
    clock.now += 1
    bar.update(3)
    bar.finish("done")
    assert out.getvalue() == expected


def test_a_task_of_no_steps_counts_as_one(clock):
    out = _Terminal()
    bar = Progress(stream=out, width=2)
    bar.start("x", 0)
    clock.now += 1
    bar.update(0)
    assert out.getvalue() == "\rx [--] 0/1  0/s  eta 1000000000 s"


def test_stderr_by_default(capsys):
    Progress().finish("summary")
    assert capsys.readouterr().err == "summary\n"


class _Writer:
    """A stream with write and flush only (a logger's, say): no isatty to ask."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_a_stream_without_isatty_is_not_a_terminal(clock):
    out = _Writer()
    bar = Progress(stream=out)
    assert bar.live is False
    bar.start("x", 2)
    clock.now += 1
    bar.update(1)
    bar.finish("done")
    assert out.text == "done\n"


def test_the_redraw_interval_is_measured_from_the_last_drawing(clock):
    out = _Terminal()
    bar = Progress(stream=out, width=2)
    clock.now = 1000.0  # perf_counter counts from an arbitrary origin
    bar.start("x", 10)
    clock.now = 1000.0625
    bar.update(1)
    assert out.getvalue() == ""
    clock.now = 1000.125
    bar.update(2)
    assert out.getvalue() == "\rx [--] 2/10  16/s  eta 0 s"


def test_the_bar_is_30_characters_wide_by_default(clock):
    out = _Terminal()
    bar = Progress(stream=out)
    bar.start("x", 3)
    clock.now += 1
    bar.update(1)
    assert out.getvalue().startswith("\rx [" + "#" * 10 + "-" * 20 + "] 1/3")
