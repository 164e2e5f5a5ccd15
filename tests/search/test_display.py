"""Fetching and showing result images, against a real HTTP server on loopback."""

import hashlib
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib import image as mpimg

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
    with pytest.raises(FetchError, match="only http and https"):
        fetch(url, tmp_path)


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
    with pytest.raises(ValueError, match="results"):
        show_grid([])


def test_an_unwritable_image_cache_is_a_warning_and_the_image_still_shows(server, tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should go")
    with pytest.warns(UserWarning, match=r"could not cache the image of .* in .*cache"):
        image = fetch_image(f"{server}/good.png", cache_dir=blocker)
    assert image.shape[:2] == (4, 6)
