"""Fault injection for the command line: each bad input or fault of project issue 9.

Every case asserts the message (naming the file, field, flag or run), exit status 2 (130 for
Ctrl-C), no traceback, and that what the user had saved is intact.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_support import RUN, TRAIN, argparse_exit, run

from capstone.common import archive
from capstone.common.archive import save_archive
from capstone.data import paths
from capstone.embeddings.image import MODEL_KIND, ImageEmbedder
from capstone.search.database import ImageDatabase


def snapshot(folder):
    """Every file below ``folder`` with its bytes."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def no_traceback(err: str) -> None:
    assert "Traceback" not in err


# -- bad arguments are refused before any data loads, naming the flag -------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["similar", "99999999999999999999999"], "argument IMAGE_ID: no image has the id"),
        (["tags", "-5"], "argument IMAGE_ID: no image has the id -5"),
        (["similar", "abc"], "argument IMAGE_ID: an image id is an integer, got 'abc'"),
        (["search", "a dog", "--captions", "-1"], "argument --captions: must be 0 or more"),
        (["search", "a dog", "--show", "grid"], "argument --show: grid: give a file name ending"),
        (["search", "a dog", "-k", "0"], "argument -k: must be 1 or more, got 0"),
        (["train", "--epochs", "0"], "argument --epochs: must be 1 or more, got 0"),
        (["train", "--batch-size", "x"], "argument --batch-size: expected an integer, got 'x'"),
        (["demo", "--images", "3"], "argument --images: must be 10 or more, got 3"),
    ],
)
def test_bad_arguments_name_the_flag(fresh_home, capsys, argv, message):
    code, err = argparse_exit(capsys, *argv)
    assert code == 2 and message in err
    assert not (fresh_home / "minicoco").exists()  # nothing was loaded or generated


def test_show_on_a_folder_or_in_a_missing_folder(fresh_home, capsys, tmp_path):
    code, err = argparse_exit(capsys, "search", "a dog", "--show", tmp_path)
    assert code == 2 and f"argument --show: {tmp_path}" in err
    (tmp_path / "g.png").mkdir()
    code, err = argparse_exit(capsys, "search", "a dog", "--show", tmp_path / "g.png")
    assert code == 2 and "is a folder" in err
    code, err = argparse_exit(capsys, "search", "a dog", "--show", tmp_path / "no" / "g.png")
    assert code == 2 and f"the folder {tmp_path / 'no'} does not exist" in err


def test_recipe_settings_name_the_flag(fresh_home, capsys):
    code, _out, err = run(capsys, "train", "--lr", "0", "--data", fresh_home / "nowhere")
    assert code == 2 and "error: --lr must lie in (0, inf), got 0.0" in err and "nowhere" not in err


# -- search output ------------------------------------------------------------------------------


def test_show_with_json_writes_the_grid_too(home, capsys, tmp_path):
    png = tmp_path / "g.png"
    code, out, err = run(capsys, "search", "a dog", "-k", 2, "--json", "--show", png)
    assert code == 0, err
    assert len(json.loads(out)["results"]) == 2
    assert png.read_bytes().startswith(b"\x89PNG") and f"grid saved to {png}" in err


def test_a_large_k_grid_is_capped_and_says_so(home, capsys, tmp_path):
    import matplotlib.pyplot as plt

    png = tmp_path / "g.png"
    code, out, err = run(capsys, "search", "a dog", "-k", 50, "--captions", 0, "--show", png)
    assert code == 0, err
    assert out.count("\n#") + out.startswith("#") == 50  # every result is printed
    assert f"grid saved to {png} (the first 36 of 50)" in err
    assert plt.imread(png).shape[0] < 5000  # 12 rows of tiles, not 17


def test_a_database_cache_that_cannot_be_written_is_a_warning(home, capsys, monkeypatch):
    (home / "runs" / RUN / "database.npz").unlink(missing_ok=True)

    def full_disk(self, path, *, overwrite=False):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ImageDatabase, "save", full_disk)
    code, out, err = run(capsys, "search", "a dog", "--run", RUN, "-k", 2)
    assert code == 0, err
    assert "warning: could not cache the database in" in err and "No space left" in err
    assert out.count("image ") == 2


# -- data --------------------------------------------------------------------------------------


def test_non_finite_descriptors_name_the_image(demo_data, fresh_home, capsys, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / paths.CAPTIONS_FILE).write_bytes((demo_data / paths.CAPTIONS_FILE).read_bytes())
    table = pickle.loads((demo_data / paths.FEATURES_FILE).read_bytes())
    victim = sorted(table)[5]
    table[victim] = np.full_like(table[victim], np.nan)
    (folder / paths.FEATURES_FILE).write_bytes(pickle.dumps(table))
    code, out, err = run(capsys, "train", "--data", folder, *TRAIN)
    assert code == 2 and out == ""
    assert f"the descriptor of image {victim} holds NaN or infinity" in err
    no_traceback(err)
    assert not list((fresh_home / "runs").glob("*/model.npz"))


def test_descriptors_of_another_width_are_named_in_the_data_line(demo_data, capsys, tmp_path):
    folder = tmp_path / "narrow"
    folder.mkdir()
    (folder / paths.CAPTIONS_FILE).write_bytes((demo_data / paths.CAPTIONS_FILE).read_bytes())
    table = pickle.loads((demo_data / paths.FEATURES_FILE).read_bytes())
    (folder / paths.FEATURES_FILE).write_bytes(
        pickle.dumps({k: v[:, :256] for k, v in table.items()})
    )
    code, out, err = run(capsys, "info", "--data", folder)
    assert code == 0, err
    assert "(256-d descriptors, not ResNet-18's 512)" in out


def test_a_glove_header_shorter_than_the_file(demo_data, fresh_home, capsys, tmp_path):
    glove = tmp_path / "g.txt.w2v"
    glove.write_text("1 3\nthe 1 2 3\ndog 4 5 6\n", encoding="utf-8")
    code, out, err = run(capsys, "info", "--data", demo_data, "--glove", glove)
    assert code == 2 and out == ""
    assert f"error: GloVe file {glove}: its header says 1 words, but 2 lines follow" in err


@pytest.mark.parametrize("present", [paths.CAPTIONS_FILE, paths.FEATURES_FILE])
def test_a_partial_cogworks_cache_is_an_error(fresh_home, capsys, monkeypatch, tmp_path, present):
    cog = tmp_path / "cog_data"
    cog.mkdir()
    (cog / present).write_text("{}")
    monkeypatch.setattr(paths, "COGWORKS_CACHE", cog)
    code, out, err = run(capsys, "info")
    assert code == 2 and out == "" and f"not found in {cog}" in err and "cogworks-data" in err


def test_demo_images_of_another_size_than_the_existing_demo(home, capsys):
    before = snapshot(home / "minicoco")
    code, _out, err = run(capsys, "demo", "--images", 500, "--run", "other")
    assert code == 2
    assert "--images 500: the demo in" in err and "has 300 images already" in err
    assert snapshot(home / "minicoco") == before
    assert not (home / "runs" / "other").exists()


# -- models and runs ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "message"), [(np.nan, "NaN or infinity"), (0.0, "all zero")])
def test_a_model_that_cannot_embed_is_refused(home, capsys, tmp_path, value, message):
    path = tmp_path / "m.npz"
    weight = np.full((512, 50), value, dtype=np.float32)
    save_archive(path, {"weight": weight}, {"d": 50, "d_in": 512}, kind=MODEL_KIND)
    code, out, err = run(capsys, "search", "a dog", "--model", path)
    assert code == 2 and out == "" and f"error: {path}: its weight" in err and message in err


def test_resume_with_fewer_epochs_than_done(fresh_home, demo_data, capsys):
    code, _, err = run(capsys, "train", "--data", demo_data, "--run", "r", "--epochs", 2)
    assert code == 0, err
    before = snapshot(fresh_home / "runs" / "r")
    code, _out, err = run(
        capsys, "train", "--data", demo_data, "--run", "r", "--resume", "--epochs", 1
    )
    assert code == 2 and "2 epochs are done already; epochs=1 would train none" in err
    assert snapshot(fresh_home / "runs" / "r") == before


def test_resume_on_other_data(fresh_home, demo_data, capsys, tmp_path):
    from capstone.data import minicoco

    code, _, err = run(capsys, "train", "--data", demo_data, "--run", "r", *TRAIN)
    assert code == 0, err
    before = snapshot(fresh_home / "runs" / "r")
    minicoco.generate(tmp_path / "other", 60, seed=5)
    code, _, err = run(
        capsys, "train", "--data", tmp_path / "other", "--run", "r", "--resume", "--epochs", 2
    )
    assert code == 2 and "cannot resume on other data" in err
    assert snapshot(fresh_home / "runs" / "r") == before


def test_a_full_disk_while_saving_is_an_error_and_keeps_the_last_checkpoint(
    fresh_home, demo_data, capsys, monkeypatch
):
    code, _, err = run(capsys, "train", "--data", demo_data, "--run", "r", *TRAIN)
    assert code == 0, err
    before = snapshot(fresh_home / "runs" / "r")

    def full_disk(path, write, *, overwrite=False):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(archive, "atomic_write", full_disk)
    resume = ["--run", "r", "--resume", "--epochs", 2, "--batch-size", 64]
    code, _, err = run(capsys, "train", "--data", demo_data, *resume)
    assert code == 2 and "No space left on device" in err and "checkpoint.npz" in err
    no_traceback(err)
    assert snapshot(fresh_home / "runs" / "r") == before


def test_a_data_home_that_is_not_a_folder(monkeypatch, capsys, tmp_path):
    home = tmp_path / "home"
    home.write_text("a file, not a folder")
    monkeypatch.setenv("CAPSTONE_HOME", str(home))
    monkeypatch.setattr(paths, "COGWORKS_CACHE", tmp_path / "no_cog_data")
    code, out, err = run(capsys, "demo", "--images", 20)
    assert code == 2 and out == "" and str(home) in err
    no_traceback(err)
    assert home.read_text() == "a file, not a folder"


def test_two_unnamed_runs_in_one_second_get_two_folders(fresh_home, demo_data, capsys, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261123-120000")
    for _ in range(2):
        code, _, err = run(capsys, "train", "--data", demo_data, *TRAIN)
        assert code == 0, err
    names = sorted(p.name for p in (fresh_home / "runs").iterdir())
    assert names == ["run-20261123-120000", "run-20261123-120000-2"]
    assert all((fresh_home / "runs" / n / "model.npz").is_file() for n in names)


def test_ctrl_c_says_how_to_resume(fresh_home, demo_data, capsys, monkeypatch):
    import capstone.frontends.cli.training

    code, _, err = run(capsys, "train", "--data", demo_data, "--run", "r", *TRAIN)
    assert code == 0, err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(capstone.frontends.cli.training, "train", interrupted)
    code, _out, err = run(
        capsys, "train", "--data", demo_data, "--run", "r", "--resume", "--epochs", 5
    )
    assert code == 130
    assert "interrupted: run r keeps its last finished epoch; continue it with" in err
    assert f"python -m capstone train --run r --resume --epochs 5 --data {demo_data}" in err


def test_two_trainings_into_one_run_folder(fresh_home, demo_data, tmp_path):
    """Two real processes: the second fails at once, the first finishes untouched."""
    env = {**os.environ, "CAPSTONE_HOME": str(fresh_home), "CAPSTONE_DATA": str(demo_data)}
    argv = [sys.executable, "-m", "capstone", "train", "--run", "shared", "--batch-size", "16"]
    first = subprocess.Popen(
        [*argv, "--epochs", "40"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    holder = fresh_home / "runs" / "shared" / ".lock.holder"  # written once the lock is held
    deadline = time.monotonic() + 60
    while not holder.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert holder.exists(), first.communicate()
    second = subprocess.run(
        [*argv, "--epochs", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 2
    assert f"is in use by a training (process {first.pid} on " in second.stderr
    assert "Traceback" not in second.stderr
    model = fresh_home / "runs" / "shared" / "model.npz"
    from capstone.embeddings.image import ImageEmbedder

    assert len(ImageEmbedder.load(model).info["history"]) == 40  # the first run's, whole
    assert not holder.exists()


def test_a_lock_file_of_an_earlier_version_does_not_block(fresh_home, demo_data, capsys):
    """Earlier versions kept the holder's pid in .lock; now only an OS lock on it counts."""
    folder = fresh_home / "runs" / "r"
    folder.mkdir(parents=True)
    (folder / ".lock").write_text(str(os.getppid()))  # a process that is alive
    code, _, err = run(capsys, "train", "--data", demo_data, "--run", "r", *TRAIN)
    assert code == 0, err
    assert (folder / "model.npz").is_file()


# -- from the review: resuming takes the run's own settings ----------------------------------


def test_resume_takes_the_runs_own_settings(fresh_home, demo_data, capsys):
    course = ["--recipe", "course", "--lr", "0.01", "--seed", "3", "--batch-size", "64"]
    code, _, err = run(capsys, "train", "--data", demo_data, "--run", "r", *course, "--epochs", 1)
    assert code == 0, err
    # no settings given: the checkpoint's (a default-recipe config would be refused)
    code, _, err = run(
        capsys, "train", "--data", demo_data, "--run", "r", "--resume", "--epochs", 2
    )
    assert code == 0, err
    config = ImageEmbedder.load(fresh_home / "runs" / "r" / "model.npz").info["train"]
    assert (config["recipe"], config["learning_rate"], config["seed"]) == ("course", 0.01, 3)
    assert config["epochs"] == 2
    before = snapshot(fresh_home / "runs" / "r")
    resume = ["--run", "r", "--resume", "--epochs", 3]
    code, _, err = run(capsys, "train", "--data", demo_data, *resume, "--lr", "0.02")
    assert code == 2
    assert "--lr 0.02: run r was trained with 0.01, and a resumed run keeps its settings" in err
    assert "data:" not in err  # refused before the data loads
    assert snapshot(fresh_home / "runs" / "r") == before


def test_the_ctrl_c_hint_resumes_a_course_recipe_demo(fresh_home, capsys, monkeypatch):
    import capstone.frontends.cli.training

    code, _, err = run(
        capsys,
        "demo",
        "--images",
        60,
        "--recipe",
        "course",
        "--seed",
        2,
        "--epochs",
        1,
        "--run",
        "d",
    )
    assert code == 0, err
    train_for_real = capstone.frontends.cli.training.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(capstone.frontends.cli.training, "train", interrupted)
    resume = ["--run", "d", "--resume", "--epochs", 2]
    code, _, err = run(capsys, "train", "--data", fresh_home / "minicoco", *resume)
    assert code == 130
    hint = err.split("continue it with\n")[1].split()
    assert hint[:3] == ["python", "-m", "capstone"]
    monkeypatch.setattr(capstone.frontends.cli.training, "train", train_for_real)
    code, _, err = run(capsys, *hint[3:])  # the hint, as printed
    assert code == 0, err
    assert len(ImageEmbedder.load(fresh_home / "runs" / "d" / "model.npz").info["history"]) == 2


def test_resume_with_other_word_vectors_is_refused(fresh_home, demo_data, capsys, tmp_path):
    code, _, err = run(capsys, "train", "--data", demo_data, "--run", "r", *TRAIN)
    assert code == 0, err
    before = snapshot(fresh_home / "runs" / "r")
    from capstone.data.glove import load_glove

    glove = load_glove()
    words = ["a", "dog", "cat", "on", "the", "beach", "in", "snow", "with", "two"]
    other = tmp_path / "other.w2v"
    lines = [f"{len(words)} {glove.dim}"]
    lines += [" ".join([w, *map(str, -glove[w])]) for w in words]
    other.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, err = run(
        capsys,
        "train",
        "--data",
        demo_data,
        "--glove",
        other,
        "--run",
        "r",
        "--resume",
        "--epochs",
        2,
    )
    assert code == 2 and "cannot resume with other word vectors" in err
    assert snapshot(fresh_home / "runs" / "r") == before


def test_evaluate_on_other_data_does_not_overwrite_the_runs_metrics(home, capsys, tmp_path):
    from capstone.data import minicoco

    metrics = home / "runs" / RUN / "metrics.json"
    run(capsys, "evaluate", "--run", RUN)
    before = metrics.read_bytes()
    minicoco.generate(tmp_path / "other", 60, seed=1)
    code, _, err = run(
        capsys, "evaluate", "--data", tmp_path / "other", "--run", RUN, "--other-data"
    )
    assert code == 0, err
    assert metrics.read_bytes() == before


def test_runs_shows_no_stale_r1_after_more_training(fresh_home, demo_data, capsys):
    code, _, err = run(capsys, "train", "--data", demo_data, "--run", "r", *TRAIN)
    assert code == 0, err
    assert run(capsys, "evaluate", "--data", demo_data, "--run", "r")[0] == 0
    rows = json.loads(run(capsys, "runs", "--json")[1])
    assert rows[0]["val_r1"] is not None
    resume = ["--run", "r", "--resume", "--epochs", 2]
    assert run(capsys, "train", "--data", demo_data, *resume)[0] == 0
    rows = json.loads(run(capsys, "runs", "--json")[1])
    assert rows[0]["val_r1"] is None  # metrics.json scored the weights of epoch 1


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", ""])
def test_run_names_stay_inside_the_runs_folder(fresh_home, capsys, name):
    code, err = argparse_exit(capsys, "train", "--run", name)
    assert code == 2 and "a run name is one folder name" in err


def test_a_tiny_demo_trains_without_a_selection_slice(fresh_home, capsys):
    code, out, err = run(capsys, "demo", "--images", 20, "--epochs", 2, "--run", "small")
    assert code == 0, err
    assert "recipe vse++, last epoch 2" in out


def test_resume_of_a_run_that_does_not_exist_leaves_no_folder(fresh_home, demo_data, capsys):
    code, _, err = run(capsys, "train", "--data", demo_data, "--run", "typo", "--resume")
    assert code == 2 and "nothing to resume" in err
    assert not (fresh_home / "runs" / "typo").exists()


# -- issue 16: runs, run folders and sizes (each: the message, exit status, files intact) -----


def test_train_never_replaces_a_model_that_no_checkpoint_continues(fresh_home, demo_data, capsys):
    code, _, err = run(capsys, "train", "--data", demo_data, "--run", "mine", *TRAIN)
    assert code == 0, err
    folder = fresh_home / "runs" / "copied"
    folder.mkdir()
    model = folder / "model.npz"
    model.write_bytes((fresh_home / "runs" / "mine" / "model.npz").read_bytes())  # copied in
    before = snapshot(folder)
    code, out, err = run(capsys, "train", "--data", demo_data, "--run", "copied", *TRAIN)
    assert code == 2 and out == ""
    assert err == (
        f"error: run copied: {model} exists and no checkpoint continues it (copied in, or "
        "trained elsewhere): training would replace it. Train into another run (--run NAME) "
        "to keep it\n"
    )
    assert snapshot(folder) == before  # model.npz byte for byte, nothing added


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_training(
    fresh_home, demo_data, capsys, monkeypatch
):
    import capstone.training.steps

    monkeypatch.setattr(capstone.training.steps, "available_memory", lambda: 50_000_000)
    code, out, err = run(capsys, "train", "--data", demo_data, "--run", "big", "--epochs", 1,
                         "--batch-size", 100_000_000)  # fmt: skip
    assert code == 2 and out == ""
    no_traceback(err)
    assert "warning: `batch_size` (--batch-size) 100,000,000 is more than the " in err
    assert "error: `batch_size` (--batch-size) 100,000,000: a step of " in err
    assert "available: choose --batch-size 512 or less" in err
    assert not (fresh_home / "runs" / "big").exists()


def test_a_run_interrupted_before_its_model_is_listed_and_resumable(
    fresh_home, demo_data, capsys, monkeypatch
):
    """Ctrl-C after epoch 1 of 3: the folder holds a checkpoint, no model yet."""
    import capstone.training.train

    real = capstone.training.train.save_checkpoint

    def save_then_ctrl_c(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(capstone.training.train, "save_checkpoint", save_then_ctrl_c)
        code, _, err = run(capsys, "train", "--data", demo_data, "--run", "R", "--epochs", 3,
                           "--batch-size", 64)  # fmt: skip
    assert code == 130
    resume = f"python -m capstone train --run R --resume --epochs 3 --data {demo_data}"
    assert err.endswith(f"continue it with\n  {resume}\n")
    checkpoint = fresh_home / "runs" / "R" / "checkpoint.npz"
    before = snapshot(fresh_home / "runs")

    code, out, err = run(capsys, "runs")
    assert code == 0, err
    assert "interrupted: no model yet" in out.splitlines()[1] and "R " in out.splitlines()[1]
    assert out.endswith(f"interrupted before their model was saved; continue with:\n  {resume}\n")
    [row] = json.loads(run(capsys, "runs", "--json")[1])
    assert (row["status"], row["epochs"], row["resume"]) == ("interrupted", 1, resume)

    code, out, err = run(capsys, "search", "a dog", "--data", demo_data, "--run", "R")
    assert code == 2 and out == ""
    assert err == (
        f"error: run 'R' has no model yet: its training stopped after epoch 1 of 3 ({checkpoint} "
        f"keeps it); continue it with {resume}\n"
    )
    assert snapshot(fresh_home / "runs") == before

    argv = resume.split()[3:]  # the command it gives works
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert len(ImageEmbedder.load(fresh_home / "runs" / "R" / "model.npz").info["history"]) == 3


@pytest.mark.parametrize(
    "argv",
    [["runs"], ["search", "a dog"], ["train", "--epochs", "1"], ["train", "--run", "r"]],
)
def test_a_runs_folder_that_is_a_file_is_named(fresh_home, demo_data, capsys, argv):
    runs = fresh_home / "runs"
    runs.parent.mkdir(parents=True, exist_ok=True)
    runs.write_text("not a folder")
    code, out, err = (
        run(capsys, *argv, "--data", demo_data) if argv != ["runs"] else run(capsys, *argv)
    )
    assert code == 2 and out == ""
    assert err == (
        f"error: {runs} is a file, but runs are kept in a folder of that name: move the file "
        "away (or set CAPSTONE_HOME to another data home)\n"
    )
    assert runs.read_text() == "not a folder"


def test_a_runs_folder_that_is_a_file_stops_the_demo_before_its_data(fresh_home, capsys):
    runs = fresh_home / "runs"
    runs.parent.mkdir(parents=True, exist_ok=True)
    runs.write_text("not a folder")
    code, out, err = run(capsys, "demo", "--images", 200, "--epochs", 1)
    assert code == 2 and out == ""
    assert err == f"error: {runs} is a file, but runs are kept in a folder of that name: move " \
        "the file away (or set CAPSTONE_HOME to another data home)\n"  # fmt: skip
    assert runs.read_text() == "not a folder"
    assert sorted(p.name for p in fresh_home.iterdir()) == ["runs"]  # no demo generated


# -- issue 16: hardening ----------------------------------------------------------------------


def test_an_invalid_host_is_blamed_not_the_port(capsys):
    code, out, err = run(capsys, "serve", "--host", "999.1.1.1", "--port", 0)
    assert code == 2 and out == ""
    assert "error: --host 999.1.1.1: not a valid address of this machine, cannot be bound" in err
    assert "--port" not in err
    no_traceback(err)


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "dog", "--glove", "{dir}"],
        ["info", "--glove", "{dir}"],
        ["describe", "x.jpg", "--weights", "{dir}"],
        ["search", "--image", "{dir}"],
        ["similar", "--photo", "{dir}"],
        ["tags", "--photo", "{dir}"],
    ],
)
def test_a_folder_given_for_a_file_is_named_as_a_folder(capsys, tmp_path, argv):
    code, err = argparse_exit(capsys, *[a.format(dir=tmp_path) for a in argv])
    assert code == 2
    assert f"{tmp_path} is a folder, expected a file" in err


def test_a_collection_name_is_called_a_collection_name(capsys, tmp_path):
    code, err = argparse_exit(capsys, "index", tmp_path, "--name", "a/b")
    assert code == 2
    assert "argument --name: 'a/b': a collection name is one folder name" in err
    assert "run name" not in err


def test_a_closed_pipe_ends_quietly(demo_data, shared_home):
    """``search ... | head -1``: the reader closes the pipe early; no error, no traceback."""
    env = {**os.environ, "CAPSTONE_HOME": str(shared_home[0])}
    argv = [sys.executable, "-m", "capstone", "search", "a dog", "--run", RUN, "--data",
            demo_data, "--all-images", "-k", 3000, "--captions", 5]  # fmt: skip
    # ~100 kB of results: more than a pipe holds, so the writer meets the closed pipe
    search = subprocess.Popen(
        [str(a) for a in argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert search.stdout.readline().startswith(b"#1 ")
    search.stdout.close()
    err = search.stderr.read().decode()
    assert search.wait(timeout=120) == 1
    assert "Broken pipe" not in err and "error" not in err
    no_traceback(err)


def test_a_full_disk_names_the_file_being_written(capsys, monkeypatch, tmp_path):
    """A write that fails for want of space names no file itself (OSError.filename is None):
    the message names the file being written, and nothing is left behind."""
    from capstone.photos import describer as photos

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(
        photos.PhotoDescriber,
        "describe_paths",
        lambda self, paths, progress: (np.ones((1, 512), np.float32), paths, []),
    )
    monkeypatch.setattr(photos.PhotoDescriber, "__init__", lambda self, weights: None)
    monkeypatch.setattr("capstone.photos.weights.locate_weights", lambda *a, **k: None)
    monkeypatch.setattr(archive.os, "fsync", full_disk)
    out = tmp_path / "features.pkl"
    code, stdout, err = run(capsys, "describe", "p.jpg", "--out", out)
    assert code == 2 and stdout == ""
    assert f"error: could not write {out}: No space left on device" in err
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary copy
    no_traceback(err)


# -- a bug is not a user error ----------------------------------------------------------------


def test_a_bare_key_error_is_a_bug_with_its_traceback(fresh_home, capsys, monkeypatch):
    import capstone.frontends.cli.runs

    def broken():
        return {}["no such key"]  # a programming error, not the user's

    monkeypatch.setattr(capstone.frontends.cli.runs, "list_runs", broken)
    with pytest.raises(KeyError, match="no such key"):
        run(capsys, "runs")
    assert "error:" not in capsys.readouterr().err


def test_every_training_flag_sets_its_config_field(capsys):
    """`training.FLAGS` and the parsers agree: each flag exists on train and demo, and its
    value reaches the `TrainConfig` field the table names."""
    from capstone.frontends.cli import build_parser
    from capstone.frontends.cli.training import FLAGS, train_config, train_settings

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("train", "demo"):
        flags = {f for a in sub.choices[name]._actions for f in a.option_strings}
        assert set(FLAGS.values()) <= flags, name
    argv = ["--recipe", "course", "--lr", "0.25", "--batch-size", "7", "--hard", "0.5"]
    values = vars(sub.choices["train"].parse_args(argv))
    config = train_config(train_settings(values))
    assert (config.learning_rate, config.batch_size, config.hard_fraction) == (0.25, 7, 0.5)
    with pytest.raises(ValueError, match="--lr"):
        train_config(train_settings({**values, "lr": -1.0}))
