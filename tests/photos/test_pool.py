"""Tests of capstone.photos.pool: describing on local processes and on a Dask LocalCluster (2
worker processes, 1 thread each, on loopback) gives one process's descriptors bit for bit,
every photo exactly once, even when a worker is killed mid-run."""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from cli_support import run
from PIL import Image
from resnet_support import random_state, write_safetensors

from capstone.photos import pool
from capstone.photos.describer import PhotoDescriber
from capstone.photos.pool import DaskUnavailable, DescribedBatch, default_workers, describe_batches

distributed = pytest.importorskip("distributed")  # the `cluster` extra, installed by .ci/run


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    state = random_state()
    codes = {k: "I64" if v.dtype == np.int64 else "F32" for k, v in state.items()}
    return write_safetensors(tmp_path_factory.mktemp("weights") / "r18.safetensors", state, codes)


@pytest.fixture(scope="module")
def album(tmp_path_factory) -> list[Path]:
    """Eleven photos of various sizes and one file that is not a photo (the fourth)."""
    folder = tmp_path_factory.mktemp("album")
    paths = []
    for i in range(11):
        rng = np.random.default_rng(i)
        pixels = rng.integers(0, 256, (40 + 7 * i, 60 + 5 * i, 3), np.uint8)
        paths.append(folder / f"p{i:02d}.jpg")
        Image.fromarray(pixels).save(paths[-1])
    (folder / "bad.jpg").write_text("not a photo")
    paths.insert(3, folder / "bad.jpg")
    return paths


@pytest.fixture(scope="module")
def one_process(weights, album) -> dict[Path, np.ndarray]:
    """What one process computes: every photo's descriptor, by path."""
    descriptors, described, _ = PhotoDescriber(weights).describe_paths(album, progress=False)
    return dict(zip(described, descriptors, strict=True))


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:
        yield cluster


def check_every_path_once(batches: list[DescribedBatch], album, one_process) -> None:
    """Each photo came back exactly once, with one process's descriptor bit for bit; the file
    that is not a photo is one failure."""
    seen = Counter(p for b in batches for p in [*b.paths, *(f for f, _ in b.failures)])
    assert seen == Counter(album)
    for b in batches:
        assert b.descriptors.shape == (len(b.paths), 512) and b.descriptors.dtype == np.float32
        for path, row in zip(b.paths, b.descriptors, strict=True):
            assert np.array_equal(row, one_process[path]), path
    failures = [f for b in batches for f in b.failures]
    assert [p.name for p, _ in failures] == ["bad.jpg"]


def test_default_workers_is_the_cores_this_process_may_use():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    assert default_workers() == (expected or os.cpu_count())


@pytest.mark.parametrize("workers", [1, 2])
def test_local_workers_give_one_process_descriptors_bit_for_bit(
    workers, weights, album, one_process
):
    batches = list(describe_batches(album, weights, workers=workers, batch_size=3))
    check_every_path_once(batches, album, one_process)
    assert all(len(b.paths) + len(b.failures) <= 3 for b in batches)


def test_ordered_batches_follow_the_paths(weights, album):
    batches = describe_batches(album, weights, workers=2, batch_size=2, ordered=True)
    assert [p for b in batches for p in [*b.paths, *(f for f, _ in b.failures)]] == album


def test_dask_cluster_gives_the_local_descriptors(cluster, weights, album, one_process):
    batches = list(describe_batches(album, weights, dask=cluster.scheduler_address, batch_size=2))
    check_every_path_once(batches, album, one_process)


def test_a_photo_a_worker_cannot_read_names_the_photo_and_the_worker(cluster, weights, tmp_path):
    missing = tmp_path / "not-on-the-shared-folder.jpg"
    (batch,) = describe_batches([missing], weights, dask=cluster.scheduler_address)
    ((path, reason),) = batch.failures
    workers = cluster.scheduler_info["workers"]
    assert path == missing and batch.paths == []
    assert any(f"(on worker {address})" in reason for address in workers), reason


def wait_for(condition, what: str, timeout: float = 60):
    """Poll ``condition()`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)
    return found


def test_a_worker_killed_mid_run_loses_no_photo(cluster, weights, album, one_process):
    """SIGKILL one worker while it holds tasks: the scheduler runs them again elsewhere, and
    every photo still comes back exactly once."""
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        pids = client.run(os.getpid)
        batches = describe_batches(album, weights, dask=cluster.scheduler_address, batch_size=1)
        got = [next(batches)]  # the run has started: every worker holds tasks

        def busy_worker():
            return next((a for a, keys in client.processing().items() if keys), None)

        victim = wait_for(busy_worker, "a worker running tasks")
        os.kill(pids[victim], signal.SIGKILL)
        got += list(batches)
    check_every_path_once(got, album, one_process)


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch, weights, album):
    monkeypatch.setattr(pool, "DASK_TIMEOUT", 1)
    address = "tcp://127.0.0.1:9"  # the discard port: nothing listens
    start = time.monotonic()
    with pytest.raises(DaskUnavailable, match=rf"--dask {address}: no Dask scheduler answered"):
        list(describe_batches(album, weights, dask=address))
    assert time.monotonic() - start < 30


def test_the_cli_says_an_unreachable_scheduler_and_exits_2(monkeypatch, capsys, weights, album):
    monkeypatch.setattr(pool, "DASK_TIMEOUT", 1)
    argv = ["describe", *album[:2], "--weights", weights, "--dask", "tcp://127.0.0.1:9"]
    code, stdout, err = run(capsys, *argv)
    assert code == 2 and stdout == ""
    assert "error: --dask tcp://127.0.0.1:9: no Dask scheduler answered within 1 s" in err
    assert "Traceback" not in err


def test_the_cli_describes_on_the_cluster_as_on_one_process(
    capsys, cluster, weights, album, one_process, tmp_path
):
    out = tmp_path / "features.pkl"
    argv = ["describe", *album, "--weights", weights, "--out", out]
    code, _, err = run(capsys, *argv, "--dask", cluster.scheduler_address)
    assert code == 0 and "skipped" in err and "bad.jpg" in err
    with open(out, "rb") as f:
        features = pickle.load(f)
    photos = [p for p in album if p.name != "bad.jpg"]
    assert list(features) == list(range(1, len(photos) + 1))  # ids in the order given
    for i, path in enumerate(photos, 1):
        assert np.array_equal(features[i][0], one_process[path])


def test_workers_must_be_a_positive_count(weights, album):
    with pytest.raises(ValueError, match="workers"):
        describe_batches(album, weights, workers=0)


def test_relative_paths_reach_the_workers_absolute_and_come_back_as_given(
    cluster, weights, album, one_process, monkeypatch
):
    monkeypatch.chdir(album[0].parent)
    relative = [Path(p.name) for p in album]
    batches = list(describe_batches(relative, weights, dask=cluster.scheduler_address))
    check_every_path_once(batches, relative, {Path(p.name): v for p, v in one_process.items()})
