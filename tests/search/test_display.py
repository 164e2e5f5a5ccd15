"""Fetching and showing result images, against a real HTTP server on loopback."""

import hashlib
import io
import itertools
import re
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import pytest
import requests
from matplotlib import image as mpimg
from matplotlib.colors import to_rgba
from requests.structures import CaseInsensitiveDict

from capstone.data import paths
from capstone.search import display
from capstone.search.display import (
    FetchError,
    fetch_image,
    is_generated_url,
    show_grid,
    usable_url,
)
from capstone.search.engine import SearchResult


def _png(h=4, w=6) -> bytes:
    pixels = np.random.default_rng(0).random((h, w, 3))
    buffer = io.BytesIO()
    mpimg.imsave(buffer, pixels, format="png")
    return buffer.getvalue()


PNG = _png()
HUGE = 50_000  # bytes: the tests' max_bytes is 10_000


class Handler(BaseHTTPRequestHandler):
    hits: ClassVar[dict[str, int]] = {}

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, body: bytes, content_type="image/png", length=True):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up, as it should
            pass

    def do_GET(self):
        Handler.hits[self.path] = Handler.hits.get(self.path, 0) + 1
        if self.path.startswith("/good"):
            self._send(PNG)
        elif self.path == "/missing":
            self.send_error(404, "Not Found")
        elif self.path == "/slow":
            time.sleep(1.5)
            self._send(PNG)
        elif self.path == "/huge":
            self._send(b"\0" * HUGE)
        elif self.path == "/huge-unsized":
            self.close_connection = True
            self._send(b"\0" * HUGE, length=False)
        elif self.path == "/text":
            self._send(b"<html>hello</html>", content_type="text/html")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def fetch(url, tmp_path, **kwargs):
    return fetch_image(url, cache_dir=tmp_path, timeout=0.5, max_bytes=10_000, **kwargs)


def test_good_image_is_decoded_and_cached(server, tmp_path):
    url = f"{server}/good/1.png"
    image = fetch(url, tmp_path)
    assert image.shape[:2] == (4, 6)
    np.testing.assert_allclose(image[..., :3], mpimg.imread(io.BytesIO(PNG))[..., :3])
    assert [p.read_bytes() for p in tmp_path.iterdir()] == [PNG]  # cached, no temp files left
    hits = Handler.hits[url.removeprefix(server)]
    np.testing.assert_array_equal(fetch(url, tmp_path), image)
    assert Handler.hits[url.removeprefix(server)] == hits  # second time from the cache


def test_cached_image_shows_offline(server, tmp_path):
    url = f"{server}/good/offline.png"
    image = fetch(url, tmp_path)
    offline = "http://127.0.0.1:9/good/offline.png"  # port 9 (discard): nothing listens
    with pytest.raises(FetchError, match="network error"):
        fetch(offline, tmp_path)
    # Copy the cache entry to the offline URL's key: the cache alone must serve it.
    (entry,) = tmp_path.iterdir()
    (tmp_path / hashlib.sha256(offline.encode()).hexdigest()).write_bytes(entry.read_bytes())
    np.testing.assert_array_equal(fetch(offline, tmp_path), image)


def test_corrupt_cache_entry_is_fetched_again(server, tmp_path):
    url = f"{server}/good/corrupt.png"
    fetch(url, tmp_path)
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(b"garbage")
    assert fetch(url, tmp_path).shape[:2] == (4, 6)
    assert entry.read_bytes() == PNG


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/missing", "HTTP 404"),
        ("/slow", "timed out"),
        ("/huge", "too large"),
        ("/huge-unsized", "too large"),
        ("/text", "not an image"),
    ],
)
def test_bad_responses_are_fetch_errors_and_not_cached(server, tmp_path, path, reason):
    with pytest.raises(FetchError, match=reason) as info:
        fetch(server + path, tmp_path)
    assert info.value.url == server + path
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "usable"),
    [
        ("http://images.cocodataset.org/val2014/x.jpg", True),
        ("HTTPS://example.org/a.png", True),
        ("javascript:alert(3)", False),
        ("JavaScript:alert(3)", False),
        ("  javascript:alert(3)", False),
        ("java\nscript:alert(3)", False),
        ("data:image/png;base64,AAAA", False),
        ('=HYPERLINK("http://evil")', False),
        ("ftp://example.org/a.jpg", False),
        ("http://", False),
        ("//example.org/a.jpg", False),
        ("http://[::1", False),
        (None, False),
    ],
)
def test_usable_url_allows_http_and_https_only(url, usable):
    """The one URL rule: what `fetch_image` fetches and the web app shows, links and exports."""
    assert (usable_url(url) is not None) is usable
    if usable:
        assert usable_url(url) == url


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "file:///etc/passwd", "a.png", 3, "http://", "javascript:x"]
)
def test_only_http_urls_are_fetched(tmp_path, url):
    with pytest.raises(FetchError, match="only http and https") as info:
        fetch(url, tmp_path)
    assert (info.value.url, info.value.reason) == (str(url), "only http and https URLs are fetched")


def test_generated_urls_are_recognized():
    assert is_generated_url("http://images.minicoco.invalid/train2014/x.jpg")
    assert not is_generated_url("http://images.cocodataset.org/train2014/x.jpg")
    assert not is_generated_url("http://invalid.example.com/x.jpg")


def result(i, url):
    return SearchResult(i, 1.0 - i / 10, url, (f"caption of {i}", "another caption"))


def _texts(ax):
    return " ".join(" ".join(t.get_text().split()) for t in ax.texts)


def test_grid_has_a_tile_per_result_and_never_crashes(server, tmp_path):
    results = [
        result(1, f"{server}/good/grid.png"),
        result(2, f"{server}/missing"),
        result(3, "ftp://example.com/a.png"),
        result(4, "http://images.minicoco.invalid/train2014/4.jpg"),
    ]
    fig = show_grid(results, ncols=3, cache_dir=tmp_path, title="a query")
    axes = fig.axes
    assert len(axes) == 6 and [ax.get_visible() for ax in axes] == [True] * 4 + [False] * 2
    assert len(axes[0].images) == 1 and axes[0].get_title().startswith("#1  0.900  id 1")
    assert "HTTP 404" in _texts(axes[1]) and not axes[1].images
    assert "only http and https" in _texts(axes[2])
    assert "generated image" in _texts(axes[3]) and "caption of 4" in _texts(axes[3])
    assert fig._suptitle.get_text() == "a query"
    plt.close(fig)


def test_grid_uses_the_fetch_it_is_given(tmp_path):
    seen = []

    def fake(url, *, cache_dir, session):
        seen.append((url, cache_dir))
        return np.zeros((2, 2, 3))

    fig = show_grid(
        [result(i, f"http://x.test/{i}") for i in range(5)], 2, fetch=fake, cache_dir=tmp_path
    )
    assert sorted(seen) == [(f"http://x.test/{i}", tmp_path) for i in range(5)]
    assert sum(len(ax.images) for ax in fig.axes) == 5 and len(fig.axes) == 6
    plt.close(fig)


@pytest.mark.parametrize("ncols", [0, -1, 1.5, True, "3"])
def test_bad_ncols(ncols):
    with pytest.raises(ValueError, match="ncols"):
        show_grid([result(1, "http://a.invalid/1")], ncols)


def test_no_results():
    with pytest.raises(ValueError) as info:
        show_grid([])
    assert str(info.value) == "`results` is empty: there is nothing to show"


def test_an_unwritable_image_cache_is_a_warning_and_the_image_still_shows(server, tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should go")
    with pytest.warns(UserWarning, match=r"could not cache the image of .* in .*cache") as record:
        image = fetch_image(f"{server}/good.png", cache_dir=blocker)
    assert image.shape[:2] == (4, 6)
    # it points at the caller's line, not at display.py's own (which would say nothing)
    assert [Path(w.filename).name for w in record] != ["display.py"]


# -- downloads through a fake session: exact requests, limits and messages ---------------------


class FakeResponse:
    """A streamed response: ``body`` handed out ``piece`` bytes at a time at most (what the
    network delivers), and no more than ``iter_content``'s chunk size; a chunk size of None
    reads the whole body at once, as urllib3 does for a body of no declared length."""

    def __init__(self, body=PNG, *, status=200, reason="OK", headers=(), piece=None):
        self.status_code, self.reason = status, reason
        self.headers = CaseInsensitiveDict(dict(headers))
        self.body, self.piece = body, piece
        self.sent = 0  # bytes handed out
        self.chunk_sizes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def iter_content(self, chunk_size=1):
        self.chunk_sizes.append(chunk_size)
        if chunk_size is None:
            step = len(self.body)
        else:
            step = min(chunk_size, self.piece or chunk_size)
        for start in range(0, len(self.body), step):
            piece = self.body[start : start + step]
            self.sent += len(piece)
            yield piece


class FakeSession:
    """``get`` records its call, then raises ``error`` or returns ``response``."""

    def __init__(self, response=None, *, error=None, before=None):
        self.response, self.error, self.before = response, error, before
        self.calls = []

    def get(self, url, **kwargs):
        self.calls.append((url, kwargs))
        if self.before is not None:
            self.before()
        if self.error is not None:
            raise self.error
        return self.response


URL = "http://images.test/1.png"


def fetch_error(tmp_path, session, **kwargs):
    with pytest.raises(FetchError) as info:
        fetch(URL, tmp_path, session=session, **kwargs)
    assert info.value.url == URL and list(tmp_path.iterdir()) == []
    return info.value.reason


def test_the_request_streams_with_the_timeout(tmp_path):
    session = FakeSession(FakeResponse())
    assert fetch(URL, tmp_path, session=session).shape[:2] == (4, 6)
    assert session.calls == [(URL, {"timeout": 0.5, "stream": True})]


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [(404, "Not Found", "HTTP 404 Not Found"), (503, None, "HTTP 503"), (500, "", "HTTP 500")],
)
def test_an_http_error_says_its_status_and_reason(tmp_path, status, reason, message):
    response = FakeResponse(status=status, reason=reason)
    assert fetch_error(tmp_path, FakeSession(response)) == message


def test_a_declared_size_over_the_limit_is_refused_before_reading(tmp_path):
    response = FakeResponse(headers={"Content-Length": "10001"})
    assert fetch_error(tmp_path, FakeSession(response)) == "too large (10,001 bytes > 10,000)"
    assert response.sent == 0


@pytest.mark.parametrize("declared", [True, False])
def test_a_download_of_exactly_max_bytes_is_accepted(tmp_path, declared):
    headers = {"Content-Length": str(len(PNG))} if declared else {}
    session = FakeSession(FakeResponse(headers=headers, piece=100))
    image = fetch_image(URL, cache_dir=tmp_path, max_bytes=len(PNG), session=session)
    np.testing.assert_array_equal(image, mpimg.imread(io.BytesIO(PNG)))  # pieces joined as sent


@pytest.mark.parametrize("piece", [None, 1000])
def test_an_undeclared_size_is_counted_and_not_read_far_past_the_limit(tmp_path, piece):
    response = FakeResponse(b"\0" * 1_000_000, piece=piece)
    assert fetch_error(tmp_path, FakeSession(response)) == "too large (over 10,000 bytes)"
    assert response.sent <= 10_000 + 64 * 1024  # read in bounded chunks, not the whole body


@pytest.fixture
def clock(monkeypatch):
    """``clock(*times)``: `time.monotonic` as the display module sees it returns ``times``,
    then the last one forever."""

    def set_times(*times):
        ticks = itertools.chain(times, itertools.repeat(times[-1]))
        monkeypatch.setattr(display, "time", SimpleNamespace(monotonic=lambda: next(ticks)))

    return set_times


def test_a_download_may_last_its_whole_timeout(tmp_path, clock):
    clock(100.0, 100.5)  # started at 100 s with a timeout of 0.5 s; the body read at 100.5 s
    assert fetch(URL, tmp_path, session=FakeSession(FakeResponse())).shape[:2] == (4, 6)


def test_a_download_past_its_deadline_is_a_timeout(tmp_path, clock):
    clock(100.0, 100.25, 100.75)  # the first piece in time, the second late
    response = FakeResponse(piece=100)
    assert fetch_error(tmp_path, FakeSession(response)) == "timed out after 0.5 s"
    assert response.sent == 200


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (requests.ConnectionError("refused"), "network error (ConnectionError)"),
        (requests.exceptions.SSLError("bad certificate"), "network error (SSLError)"),
        (requests.ReadTimeout("slow"), "timed out after 0.5 s"),
        (requests.ConnectTimeout("slow"), "timed out after 0.5 s"),
    ],
)
def test_request_failures_name_their_kind(tmp_path, error, reason):
    assert fetch_error(tmp_path, FakeSession(error=error)) == reason


def test_bytes_that_are_not_an_image_name_the_decoder_error(tmp_path):
    reason = fetch_error(tmp_path, FakeSession(FakeResponse(b"<html>hello</html>")))
    assert re.fullmatch(r"not an image \(\w+Error\)", reason), reason


def test_the_default_cache_is_the_images_folder_of_the_cache(tmp_path):
    fetch_image(URL, session=FakeSession(FakeResponse()))
    entry = paths.cache_dir() / "images" / hashlib.sha256(URL.encode()).hexdigest()
    assert entry.read_bytes() == PNG


def test_an_entry_cached_meanwhile_by_another_fetch_is_replaced_without_a_warning(tmp_path):
    """Two fetches of one image at once (two grids, two notebooks) both write the entry."""
    entry = tmp_path / hashlib.sha256(URL.encode()).hexdigest()
    session = FakeSession(FakeResponse(), before=lambda: entry.write_bytes(b"another's PNG"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fetch(URL, tmp_path, session=session).shape[:2] == (4, 6)
    assert entry.read_bytes() == PNG


def test_a_corrupt_entry_removed_meanwhile_by_another_fetch_is_fetched(tmp_path, monkeypatch):
    entry = tmp_path / hashlib.sha256(URL.encode()).hexdigest()
    entry.write_bytes(b"garbage")
    decode = display._decode

    def decode_after_another_fetch_removed_it(data, url):
        entry.unlink(missing_ok=True)  # the other fetch found it corrupt too, and removed it
        return decode(data, url)

    monkeypatch.setattr(display, "_decode", decode_after_another_fetch_removed_it)
    assert fetch(URL, tmp_path, session=FakeSession(FakeResponse())).shape[:2] == (4, 6)


# -- the grid, through a fake fetch: tiles, texts and layout -----------------------------------

DOG = "a brown dog with a red collar runs on the beach at sunset, chasing a ball"
DOG_WRAPPED = "a brown dog with a red collar runs on\nthe beach at sunset, chasing a ball"  # 40
FAILURE = "the server closed the connection early before sending the whole file"
FAILURE_WRAPPED = "the server closed the\nconnection early before\nsending the whole file"  # 30
BOAT = "a small boat floats on the calm water by a wooden pier at dawn"
BOAT_WRAPPED = "a small boat floats on the calm\nwater by a wooden pier at dawn"  # 36
PHOTO = np.linspace(0, 1, 2 * 3 * 3).reshape(2, 3, 3)


def fake_fetch(url, *, cache_dir, session):
    assert isinstance(session, requests.Session)  # show_grid's one session, shared
    if "fail" in url:
        raise FetchError(url, FAILURE)
    return PHOTO


def grid(results, ncols=3, **kwargs):
    return show_grid(results, ncols, fetch=fake_fetch, **kwargs)


def assert_tile_text(ax, text, color):
    (shown,) = ax.texts
    assert shown.get_text() == text and ax.get_facecolor() == to_rgba(color)
    assert shown.get_position() == (0.5, 0.5) and shown.get_transform() is ax.transAxes
    assert (shown.get_ha(), shown.get_va(), shown.get_wrap()) == ("center", "center", True)
    assert shown.get_fontsize() == 8


def test_a_photo_tile_shows_the_photo_rank_score_id_and_first_caption():
    fig = grid([SearchResult(7, 0.12345, "http://x.test/7", (f"  {DOG} ", "a cat"))], ncols=1)
    (ax,) = fig.axes  # a 1 x 1 grid is a grid too
    np.testing.assert_array_equal(ax.images[0].get_array(), PHOTO)
    assert (ax.get_title(), ax.title.get_fontsize()) == ("#1  0.123  id 7", 9)
    assert (ax.get_xlabel(), ax.xaxis.label.get_fontsize()) == (DOG_WRAPPED, 7)
    assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == [] and not ax.texts
    assert tuple(fig.get_size_inches()) == pytest.approx((3.2, 3.4)) and fig._suptitle is None
    plt.close(fig)


def test_a_failed_tile_says_why_over_the_first_caption():
    fig = grid([SearchResult(3, 0.5, "http://x.test/fail", (DOG, "a cat"))])
    ax = fig.axes[0]
    assert_tile_text(ax, "image unavailable:\n" + FAILURE_WRAPPED, "0.85")
    assert (ax.get_xlabel(), ax.xaxis.label.get_fontsize()) == (DOG_WRAPPED, 7)
    assert not ax.images and ax.get_title() == "#1  0.500  id 3"
    plt.close(fig)


def test_a_generated_image_tile_lists_its_first_five_captions():
    captions = (f" {BOAT} ", "two", "three", "four", "five", "six")
    fig = grid([SearchResult(1, 0.5, "http://images.minicoco.invalid/1.jpg", captions)])
    ax = fig.axes[0]
    text = "generated image\n(no photo)\n\n" + "\n".join([BOAT_WRAPPED, *captions[1:5]])
    assert_tile_text(ax, text, "0.95")
    assert not ax.images and ax.get_xlabel() == ""
    plt.close(fig)


@pytest.mark.parametrize("url", ["http://x.test/1", "http://x.test/fail"])
def test_a_result_without_captions_has_an_empty_caption(url):
    fig = grid([SearchResult(1, 0.5, url, ())])
    assert fig.axes[0].get_xlabel() == ""
    plt.close(fig)


def test_the_figure_has_a_fixed_size_per_tile():
    fig = grid([result(i, f"http://x.test/{i}") for i in range(5)], ncols=2)
    assert tuple(fig.get_size_inches()) == pytest.approx((2 * 3.2, 3 * 3.4))
    assert [ax.get_title()[:3] for ax in fig.axes[:5]] == ["#1 ", "#2 ", "#3 ", "#4 ", "#5 "]
    plt.close(fig)


def test_the_grid_has_three_columns_by_default():
    fig = show_grid([result(i, f"http://x.test/{i}") for i in range(4)], fetch=fake_fetch)
    assert len(fig.axes) == 6 and tuple(fig.get_size_inches()) == pytest.approx((9.6, 6.8))
    plt.close(fig)


@pytest.mark.parametrize(
    ("n_results", "max_workers", "threads"), [(10, None, 8), (3, None, 3), (3, 2, 2)]
)
def test_downloads_use_max_workers_threads_at_most(monkeypatch, n_results, max_workers, threads):
    pools = []

    class RecordingPool(ThreadPoolExecutor):
        def __init__(self, max_workers=None, **kwargs):
            pools.append(max_workers)
            super().__init__(max_workers, **kwargs)

    monkeypatch.setattr(display, "ThreadPoolExecutor", RecordingPool)
    options = {} if max_workers is None else {"max_workers": max_workers}
    fig = grid([result(i, f"http://x.test/{i}") for i in range(n_results)], **options)
    assert pools == [threads]
    plt.close(fig)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ncols": 0}, "`ncols` must be a positive integer, got 0"),
        ({"max_workers": 0}, "`max_workers` must be a positive integer, got 0"),
        ({"max_workers": 2.0}, "`max_workers` must be a positive integer, got 2.0"),
    ],
)
def test_bad_counts_are_named(options, message):
    with pytest.raises(ValueError) as info:
        show_grid([result(1, "http://a.invalid/1")], **options)
    assert str(info.value) == message
