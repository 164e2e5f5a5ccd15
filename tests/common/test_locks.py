"""One writer at a time: the lock is the operating system's, held by a process, freed with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import capstone
from capstone.common.locks import LOCK_FILE, FolderLocked, exclusive

# A holder in another process: takes the lock, says "held", then obeys stdin ("release").
HOLDER = """
import sys
from capstone.common.locks import exclusive
with exclusive(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def holder(tmp_path):
    """Start a process holding ``tmp_path / "run"``; returns it once it holds the folder."""
    started = []

    def start(folder: Path) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(Path(capstone.__file__).parents[1])}
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(folder)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        started.append(process)
        assert process.stdout.readline() == "held\n"  # the condition waited on: it holds
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_second_process_is_refused_at_once_then_admitted_after_release(holder, tmp_path):
    folder = tmp_path / "run"
    process = holder(folder)
    with pytest.raises(FolderLocked) as refused:
        with exclusive(folder):
            pass
    message = str(refused.value)
    assert f"run folder {folder} is in use by a training (process {process.pid} on " in message
    assert "train into another run (--run NAME)" in message
    process.stdin.write("release\n")
    process.stdin.flush()
    assert process.stdout.readline() == "released\n"
    with exclusive(folder):  # freed by its holder
        assert (folder / LOCK_FILE).exists()


def test_a_holder_killed_with_sigkill_frees_the_folder(holder, tmp_path):
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("no SIGKILL here")
    folder = tmp_path / "run"
    process = holder(folder)
    with pytest.raises(FolderLocked):
        with exclusive(folder):
            pass
    os.kill(process.pid, signal.SIGKILL)
    process.wait()  # the system closed its files, and with them its lock
    with exclusive(folder):
        pass


def test_a_second_holder_in_the_same_process_is_refused_too(tmp_path):
    with exclusive(tmp_path):
        with pytest.raises(FolderLocked, match=f"run folder {tmp_path} is in use by a training"):
            with exclusive(tmp_path):
                pass
    with exclusive(tmp_path):  # released on leaving the block
        pass


def test_a_leftover_lock_file_of_an_earlier_version_does_not_block(tmp_path):
    """Earlier versions wrote the holder's pid into .lock: a live pid there means nothing now."""
    (tmp_path / LOCK_FILE).write_text(str(os.getppid()))  # a process that is alive
    with exclusive(tmp_path):
        pass
    with exclusive(tmp_path):  # and the file this version leaves behind blocks nobody either
        pass


def test_the_holder_record_is_only_for_the_message(tmp_path):
    """A stale record (of a process long gone) neither blocks nor survives the next holder."""
    record = tmp_path / f"{LOCK_FILE}.holder"
    record.write_text('{"pid": 1, "host": "elsewhere", "since": "yesterday"}')
    with exclusive(tmp_path):
        assert f'"pid": {os.getpid()}' in record.read_text()
    assert not record.exists()


def test_the_block_raising_releases_the_lock(tmp_path):
    with pytest.raises(KeyError):
        with exclusive(tmp_path):
            raise KeyError("boom")
    with exclusive(tmp_path):
        pass


@pytest.mark.parametrize(
    "record",
    [None, "not json", "[1, 2]", '{"pid": 1}', "\xff"],
    ids=["missing", "not-json", "not-an-object", "a-key-missing", "not-utf8"],
)
def test_the_message_names_the_holder_it_recorded_and_says_less_without_one(tmp_path, record):
    with exclusive(tmp_path):
        with pytest.raises(FolderLocked) as refused:
            with exclusive(tmp_path):
                pass
        assert f"in use by a training (process {os.getpid()} on {socket.gethostname()}, since " in (
            str(refused.value)
        )
        holder = tmp_path / f"{LOCK_FILE}.holder"
        if record is None:
            holder.unlink()
        else:
            holder.write_bytes(record.encode("latin-1"))
        with pytest.raises(FolderLocked) as refused:
            with exclusive(tmp_path):
                pass
    assert str(refused.value) == (
        f"run folder {tmp_path} is in use by a training: "
        "wait for it to finish, or train into another run (--run NAME)"
    )
