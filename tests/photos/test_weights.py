"""Tests of capstone.photos.weights: finding the weights file (explicit, cached) and the
download (with ``requests.get`` faked: no network)."""

from __future__ import annotations

import hashlib
import os
import types
from pathlib import Path

import pytest
import requests

from capstone.photos import weights
from capstone.photos.weight_files import WEIGHTS_FILE
from capstone.photos.weights import WEIGHTS_URL, WeightsUnavailable, fetch_weights, locate_weights

# -- download and cache ------------------------------------------------------------------------


class FakeResponse:
    def __init__(self, content: bytes, status: int = 200):
        self.content, self.status = content, status
        self.headers = {"content-length": str(len(content))}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def raise_for_status(self):
        if self.status >= 400:
            raise requests.HTTPError(f"{self.status} Client Error")

    def iter_content(self, chunk_size):
        for start in range(0, len(self.content), 7):
            yield self.content[start : start + 7]


@pytest.fixture
def download(monkeypatch):
    """Fake ``requests.get``: serves ``download.content``; records each call."""
    fake = types.SimpleNamespace(content=b"resnet weights " * 10, status=200, calls=[])

    def get(url, **kwargs):
        fake.calls.append((url, kwargs))
        return FakeResponse(fake.content, fake.status)

    monkeypatch.setattr(requests, "get", get)
    return fake


def matching_prefix(monkeypatch, content: bytes) -> None:
    monkeypatch.setattr(weights, "SHA256_PREFIX", hashlib.sha256(content).hexdigest()[:8])


def test_download_with_the_right_hash_is_kept(tmp_path, monkeypatch, download):
    matching_prefix(monkeypatch, download.content)
    path = fetch_weights(tmp_path / "cache", progress=False)
    assert path == tmp_path / "cache" / WEIGHTS_FILE
    assert path.read_bytes() == download.content
    (url, kwargs), = download.calls  # fmt: skip
    assert url == WEIGHTS_URL
    assert kwargs["stream"] is True and kwargs["timeout"] > 0
    assert fetch_weights(tmp_path / "cache", progress=False) == path
    assert len(download.calls) == 1  # downloaded once, then cached


def test_download_with_a_wrong_hash_leaves_nothing(tmp_path, download):
    with pytest.raises(WeightsUnavailable, match=r"sha256 is .* expected f37072fd"):
        fetch_weights(tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def assert_both_ways(message: str, cache_dir: Path) -> None:
    assert "--weights FILE" in message
    assert f"curl -LO {WEIGHTS_URL}" in message
    assert str(cache_dir) in message


@pytest.mark.parametrize(
    "failure", [requests.ConnectionError("Name or service not known"), requests.Timeout("slow")]
)
def test_network_failure_says_how_to_get_the_weights(tmp_path, monkeypatch, failure):
    def get(url, **kwargs):
        raise failure

    monkeypatch.setattr(requests, "get", get)
    with pytest.raises(WeightsUnavailable) as info:
        fetch_weights(tmp_path / "cache", progress=False)
    assert isinstance(info.value, RuntimeError)
    assert_both_ways(str(info.value), tmp_path / "cache")
    assert not (tmp_path / "cache" / WEIGHTS_FILE).exists()


def test_server_error_is_unavailable(tmp_path, download):
    download.status = 404
    with pytest.raises(WeightsUnavailable, match="404"):
        fetch_weights(tmp_path, progress=False)


def test_explicit_file_wins(tmp_path, download):
    explicit = tmp_path / "mine.safetensors"
    explicit.write_bytes(b"x")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / WEIGHTS_FILE).write_bytes(b"y")
    assert locate_weights(explicit, tmp_path / "cache") == explicit
    assert download.calls == []


def test_explicit_missing_file(tmp_path, download):
    with pytest.raises(FileNotFoundError, match=r"gone.pth: no such weights file"):
        locate_weights(tmp_path / "gone.pth")
    assert download.calls == []


def test_cached_file_is_used(tmp_path, download):
    (tmp_path / WEIGHTS_FILE).write_bytes(b"y")
    assert locate_weights(cache_dir=tmp_path) == tmp_path / WEIGHTS_FILE
    assert download.calls == []


def test_no_download_when_off(tmp_path, download):
    with pytest.raises(WeightsUnavailable, match="downloading is off") as info:
        locate_weights(cache_dir=tmp_path, download=False)
    assert_both_ways(str(info.value), tmp_path)
    assert download.calls == []


def test_default_cache_is_in_the_data_home(monkeypatch, download):
    matching_prefix(monkeypatch, download.content)
    path = locate_weights(progress=False)
    assert path == Path(os.environ["CAPSTONE_HOME"]) / "cache" / "weights" / WEIGHTS_FILE
    assert path.read_bytes() == download.content
