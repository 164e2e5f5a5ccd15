"""Tests of the web app (`capstone.frontends.web`) through Flask's test client: every route,
every bad input, escaping, the security headers, and answers equal to the library's."""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from cli_support import RUN, argparse_exit, run
from markupsafe import escape
from PIL import Image
from web_support import BROKEN_PHOTO, HOSTILE

from capstone.frontends.web.app import CONTENT_SECURITY_POLICY
from capstone.frontends.web.service import MAX_K, MAX_QUERY_CHARS, SearchService
from capstone.search.terms import parse_terms

ROUTES = ["/", "/?q=a+dog", "/about", "/photo", "/api/search?q=dog", "/api/about", "/image/{id}",
          "/api/similar/{id}", "/api/tags/{id}", "/api/rank?q=dog&image_id={id}",
          "/nowhere", "/api/search?q=dog&k=0"]  # fmt: skip


def tiles(page: str) -> list[str]:
    return re.findall(r'<li class="tile[^"]*" data-image-id="(\d+)"', page)


@pytest.mark.parametrize("route", ROUTES)
def test_every_response_carries_the_security_headers(client, hostile_image, route):
    response = client.get(route.format(id=hostile_image))
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert (
        "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_search_page_shows_k_tiles_with_score_id_and_captions(client, web_service):
    response = client.get("/?q=a+dog+in+a+park&k=7&images=all")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    ids = tiles(page)
    expected = web_service.search("a dog in a park", 7, None, "all")["results"]
    assert ids == [str(r["image_id"]) for r in expected]
    assert len(ids) == 7
    first = expected[0]
    assert f"{first['score']:.3f}" in page and f"image {first['image_id']}" in page
    assert html.escape(first["captions"][1], quote=False) in page
    # demo images have no photo: no <img> asks the browser for a .invalid host
    photos = sum(not r["generated"] for r in expected)  # (the fixture's one real-looking URL)
    assert page.count('<img class="photo"') == photos and "no-photo" in page
    assert "Demo data" in page and "generated" in page


def test_search_page_without_a_query_is_the_form(client):
    page = client.get("/").get_data(as_text=True)
    assert '<input type="search" name="q"' in page and tiles(page) == []


def test_ignored_words_are_shown_above_the_results(client):
    page = client.get("/?q=a+dog+zzyzx").get_data(as_text=True)
    assert "Ignored" in page and "<code>zzyzx</code>" in page
    assert page.index("Ignored") < page.index('id="results"')


def test_a_query_renders_as_text(client):
    query = "<script>alert(1)</script> dog \"x\" 'y'"
    response = client.get("/", query_string={"q": query})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_caption_renders_as_text(client, hostile_image):
    page = client.get(f"/image/{hostile_image}").get_data(as_text=True)
    assert '<script>alert("x")' not in page
    assert str(escape(HOSTILE)) in page
    # the only scripts of any page are the app's own file
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/app.js" defer>']


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("k=0", "`k` must be a whole number from 1 to 100, got 0"),
        (f"k={MAX_K + 1}", f"`k` must be a whole number from 1 to 100, got {MAX_K + 1}"),
        ("k=ten", "`k` must be a whole number from 1 to 100, got 'ten'"),
        ("threshold=2", "threshold must be a number from -1 to 1, got '2'"),
        ("threshold=nan", "threshold must be a number from -1 to 1, got 'nan'"),
        ("images=mine", "images must be one of validation, all, got 'mine'"),
        ("format=xml", "format must be json or csv, got 'xml'"),
    ],
)
def test_bad_search_values_are_400_naming_the_parameter(client, query, message):
    response = client.get(f"/api/search?q=dog&{query}")
    assert response.status_code == 400
    assert response.get_json() == {"error": message, "status": 400}


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ("", "q (the query) is empty"),
        ("   ", "q (the query) is empty"),
        ("d" * (MAX_QUERY_CHARS + 1), f"is {MAX_QUERY_CHARS + 1} characters long; at most 200"),
        ("zzyzx qwop", "q: no word of query 'zzyzx qwop' carries weight"),
        ("dog - dog", "cancel out"),
        ("11:dog", "q: the weight of '11:dog' must lie in (0, 10]"),
        ("a + b + c + d + e + f + g + h + i", "q: a query has at most 8 terms"),
    ],
)
def test_bad_queries_are_400_on_the_api_and_on_the_page(client, q, message):
    api = client.get("/api/search", query_string={"q": q})
    assert api.status_code == 400 and message in api.get_json()["error"]
    if q.strip():
        page = client.get("/", query_string={"q": q})
        assert page.status_code == 400
        assert str(escape(message)) in page.get_data(as_text=True)


@pytest.mark.parametrize(
    "route",
    ["/image/987654321", "/api/tags/987654321", "/api/similar/987654321",
     "/api/rank?q=dog&image_id=987654321", "/api/rank?q=dog&image_id=x"],
)  # fmt: skip
def test_unknown_images_are_404_with_a_message(client, route):
    response = client.get(route)
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "there is no image" in body and "Traceback" not in body


def test_unknown_pages_and_methods_are_error_pages(client):
    missing = client.get("/image/not-a-number")
    assert missing.status_code == 404 and "<h1>404</h1>" in missing.get_data(as_text=True)
    post = client.post("/?q=dog")
    assert post.status_code == 405 and "<h1>405</h1>" in post.get_data(as_text=True)
    api = client.get("/api/nothing")
    assert api.status_code == 404 and api.get_json()["status"] == 404


def test_a_server_fault_is_a_page_without_a_traceback(client, web_service, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(web_service, "search", broken)
    for route in ("/?q=dog", "/api/search?q=dog"):
        response = client.get(route)
        body = response.get_data(as_text=True)
        assert response.status_code == 500
        assert "something went wrong" in body
        assert "secret internals" not in body and "Traceback" not in body


def test_weighted_terms_are_the_library_query(client, web_service):
    answer = client.get("/api/search?q=2:dog+%2B+park+-+snow&k=5&images=all").get_json()
    assert answer["terms"] == [
        {"weight": 2.0, "text": "dog"},
        {"weight": 1.0, "text": "park"},
        {"weight": -1.0, "text": "snow"},
    ]
    engine = web_service.engines["all"]
    q = engine.terms_vector(parse_terms("2:dog + park - snow"))
    expected = engine.search_vector(q, 5)
    assert [r["image_id"] for r in answer["results"]] == [r.image_id for r in expected]
    assert answer["n_images"] == len(engine.database)


def test_validation_and_all_images_search_different_databases(client, web_service):
    validation = client.get("/api/search?q=dog&k=100").get_json()
    everything = client.get("/api/search?q=dog&k=100&images=all").get_json()
    allowed = set(web_service.engines["validation"].database.image_ids.tolist())
    assert {r["image_id"] for r in validation["results"]} <= allowed
    assert everything["n_images"] > validation["n_images"] == len(allowed)


def test_threshold_keeps_only_scores_at_or_above_it(client):
    scores = [r["score"] for r in client.get("/api/search?q=dog&k=50").get_json()["results"]]
    cut = float(np.median(scores))
    kept = client.get(f"/api/search?q=dog&k=50&threshold={cut}").get_json()["results"]
    assert kept and all(r["score"] >= cut - 1e-4 for r in kept)
    assert len(kept) < len(scores)


def test_csv_export_is_the_result_list_and_defuses_formulas(client, hostile_image):
    # a query near the hostile caption's image: its first caption starts with "<script>", and
    # caption text starting with "=" must come out quoted
    response = client.get("/api/search?q=dog&k=20&images=all&format=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["rank", "image_id", "score", "url", "caption"]
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(1, 21)]
    json_ids = [r["image_id"] for r in client.get("/api/search?q=dog&k=20&images=all").get_json()
                ["results"]]  # fmt: skip
    assert [int(r[1]) for r in rows[1:]] == json_ids


def test_csv_export_quotes_a_leading_formula_sign(web_service, monkeypatch):
    from capstone.frontends.web.api import csv_response

    answer = {"results": [{"rank": 1, "image_id": 5, "score": 0.5, "url": "u",
                           "captions": ["=HYPERLINK(1)"]}]}  # fmt: skip
    text = csv_response(answer).get_data(as_text=True)
    assert "'=HYPERLINK(1)" in text


def test_image_page_shows_captions_tags_similar_and_the_rank(client, web_service, hostile_image):
    page = client.get(f"/image/{hostile_image}?q=a+dog&images=validation").get_data(as_text=True)
    assert 'id="captions"' in page and 'id="tags"' in page
    tags = web_service.tags(hostile_image)["tags"]
    assert tags and all(f">{t['word']}</a>" in page for t in tags)
    similar = web_service.similar(hostile_image, None, "semantic", "validation")["results"]
    assert tiles(page) == [str(r["image_id"]) for r in similar]
    assert str(hostile_image) not in tiles(page)
    rank = web_service.rank("a dog", hostile_image, "validation")
    assert re.search(rf"Rank <strong>{rank['rank']:,}</strong> of {rank['n_images']:,}", page)


def test_similar_in_descriptor_space_ranks_every_image(client, hostile_image):
    answer = client.get(f"/api/similar/{hostile_image}?space=descriptor&k=5").get_json()
    assert answer["space"] == "descriptor" and answer["images"] == "all"
    assert len(answer["results"]) == 5
    assert hostile_image not in [r["image_id"] for r in answer["results"]]
    bad = client.get(f"/api/similar/{hostile_image}?space=pixels")
    assert (
        bad.status_code == 400
        and "space must be one of semantic, descriptor" in (bad.get_json()["error"])
    )


def test_rank_api_matches_the_engine(client, web_service, hostile_image):
    answer = client.get(f"/api/rank?q=a+dog&image_id={hostile_image}").get_json()
    expected = web_service.engines["validation"].rank_of("a dog", hostile_image)
    assert (answer["rank"], answer["n_images"], answer["in_database"]) == (
        expected.rank,
        expected.n_images,
        True,
    )
    missing = client.get("/api/rank?q=dog")
    assert missing.status_code == 400 and "image_id is missing" in missing.get_json()["error"]


def test_about_says_what_is_served(client, web_service):
    page = client.get("/about").get_data(as_text=True)
    about = web_service.about()
    assert about["run"] in page and about["recipe"] in page
    assert "generated" in page and f"{about['images']:,}" in page
    assert client.get("/api/about").get_json()["validation_images"] == len(
        web_service.engines["validation"].database
    )
    # the path that answers, per image set: the tiny data is below the index's threshold
    assert about["answered_by"] == {
        images: f"exact scan of {len(engine.database):,} images"
        for images, engine in web_service.engines.items()
    }
    assert f"validation images: {about['answered_by']['validation']}" in page


def test_the_service_needs_no_caption_embeddings(web_service):
    assert web_service.dataset.caption_embeddings is None
    assert isinstance(web_service, SearchService)


# -- the serve command ---------------------------------------------------------------------------


def test_serve_refuses_a_bad_port_before_loading(capsys):
    code, err = argparse_exit(capsys, "serve", "--port", "70000")
    assert code == 2 and "argument --port: must be a port number from 0 to 65535, got 70000" in err


def test_serve_names_a_port_in_use(home, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "serve", "--port", port)
    assert code == 2
    assert f"error: --host 127.0.0.1 --port {port}: Address already in use" in err


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_says_its_url_answers_and_stops_on_ctrl_c(home, stop):
    """The real command in a child process: the URL line, a JSON answer, then Ctrl-C (or a
    service manager's SIGTERM): "stopped", exit 0."""
    env = {k: v for k, v in os.environ.items() if k != "CAPSTONE_DATA"}
    env["CAPSTONE_HOME"] = str(home)
    child = subprocess.Popen(
        [sys.executable, "-m", "capstone", "serve", "--port", "0", "--data", home / "minicoco"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = child.stdout.readline()
        url = re.search(r"at (http://127\.0\.0\.1:\d+/) \(Ctrl-C stops\)", line)
        assert url, line + child.stderr.read()
        assert line.startswith(f"serving run {RUN} on ")
        with urllib.request.urlopen(url.group(1) + "api/search?q=a+dog&k=3") as response:
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert len(json.load(response)["results"]) == 3
    finally:
        child.send_signal(stop)
        _, err = child.communicate(timeout=30)
    assert child.returncode == 0 and "stopped" in err and "Traceback" not in err


# -- photo queries ------------------------------------------------------------------------------


def jpeg_bytes(seed: int = 0, size=(64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()


def upload(client, route: str, data: bytes | None, **fields):
    form = dict(fields)
    if data is not None:
        form["photo"] = (io.BytesIO(data), "holiday.jpg")
    return client.post(route, data=form, content_type="multipart/form-data")


def test_a_photo_upload_finds_images_like_it_and_its_tags(client, web_service, tmp_path):
    data = jpeg_bytes()
    answer = upload(client, "/api/photo", data, k="5", space="semantic").get_json()
    photo = tmp_path / "p.jpg"
    photo.write_bytes(data)
    descriptor = web_service.describer.describe(photo)
    engine = web_service.engines["validation"]
    assert [r["image_id"] for r in answer["results"]] == [
        r.image_id for r in engine.similar_to_descriptor(descriptor, 5)
    ]
    assert [t["word"] for t in answer["tags"]] == [
        w for w, _ in engine.tags_of_descriptor(descriptor, 8)
    ]
    page = upload(client, "/photo", data, k="4", space="descriptor")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert len(tiles(body)) == 4 and 'id="tags"' in body


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (None, 400, "photo: choose a photo file to upload"),
        (b"", 400, "photo: "),
        (b"just some text", 400, "photo: "),
        (jpeg_bytes()[:300], 400, "photo: "),
    ],
)
def test_bad_uploads_are_400_without_server_paths(client, data, status, message):
    response = upload(client, "/api/photo", data)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error.startswith(message) and "capstone-upload" not in error and "/tmp" not in error


def test_an_upload_too_large_is_413(client):
    response = upload(client, "/api/photo", b"x" * (21 * 2**20))
    assert response.status_code == 413
    assert response.get_json()["error"] == "the upload is larger than 20 MB"


def test_no_weights_means_a_503_that_says_how_to_get_them(web_service):
    from dataclasses import replace

    from capstone.frontends.web.app import create_app

    app = create_app(replace(web_service, describer=None))
    client = app.test_client()
    response = upload(client, "/api/photo", jpeg_bytes())
    assert response.status_code == 503
    assert "--weights FILE" in response.get_json()["error"]
    assert "need ResNet-18's weights" in client.get("/photo").get_data(as_text=True)


# -- hardening (issue 16) -----------------------------------------------------------------------


@contextlib.contextmanager
def coco_url(service, i: int, url: str):
    """The i-th validation image (its id), with ``url`` as its coco_url while in the block."""
    image_id = int(service.engines["validation"].database.image_ids[i])
    urls, row = service.dataset.data.urls, int(service.dataset.data.image_index(image_id))
    saved, urls[row] = urls[row], url
    try:
        yield image_id
    finally:
        urls[row] = saved


@pytest.fixture
def scripted_image(web_service) -> int:
    """A validation image whose coco_url is ``javascript:alert(3)`` for one test."""
    with coco_url(web_service, 2, "javascript:alert(3)") as image_id:
        yield image_id


def test_a_javascript_url_is_never_rendered_or_exported(
    client, web_service, scripted_image, broken_photo_image
):
    caption = web_service.image(scripted_image)["captions"][0]
    query = {"q": caption, "k": 100, "images": "all"}
    answer = client.get("/api/search", query_string=query).get_json()
    assert scripted_image in [r["image_id"] for r in answer["results"]]
    assert next(r["url"] for r in answer["results"] if r["image_id"] == scripted_image) is None
    assert client.get(f"/api/similar/{scripted_image}").get_json()["image_id"] == scripted_image
    for route, params in [("/", query), (f"/image/{scripted_image}", {}),
                          ("/api/search", {**query, "format": "csv"})]:  # fmt: skip
        body = client.get(route, query_string=params).get_data(as_text=True)
        assert "javascript" not in body.lower(), route
    page = client.get(f"/image/{scripted_image}").get_data(as_text=True)
    assert "coco_url</a>" not in page and 'class="tile big no-photo"' in page
    tile = re.search(rf'<li class="tile([^"]*)" data-image-id="{scripted_image}"',
                     client.get("/", query_string=query).get_data(as_text=True))  # fmt: skip
    assert tile and "no-photo" in tile[1]  # the tile shows the captions
    # an http URL is shown and linked (here one that cannot load: the browser test's)
    page = client.get(f"/image/{broken_photo_image}").get_data(as_text=True)
    assert f'<img class="photo" src="{BROKEN_PHOTO}"' in page
    assert f'<a href="{BROKEN_PHOTO}" rel="noreferrer">coco_url</a>' in page


def test_csv_export_defuses_every_text_cell(web_service, client):
    from capstone.frontends.web.api import csv_response

    answer = {"results": [{"rank": 1, "image_id": 5, "score": -0.5, "url": "=HYPERLINK(1)",
                           "captions": ["@cmd"]}]}  # fmt: skip
    rows = list(csv.reader(io.StringIO(csv_response(answer).get_data(as_text=True))))
    assert rows[1] == ["1", "5", "-0.5", "'=HYPERLINK(1)", "'@cmd"]
    # through the app: a formula as coco_url is no URL at all, so its cell is empty
    with coco_url(web_service, 3, '=HYPERLINK("http://x")') as image_id:
        caption = web_service.image(image_id)["captions"][0]
        query = {"q": caption, "k": 100, "format": "csv"}
        export = client.get("/api/search", query_string=query)
    row = next(r for r in csv.reader(io.StringIO(export.get_data(as_text=True)))
               if r[1] == str(image_id))  # fmt: skip
    assert row[3] == ""


# -- uploads: the decode limit, the concurrency limit, nothing on disk, the form's limits


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_a_photo_over_50_megapixels_is_refused_before_decoding(client):
    data = png_bytes(Image.new("1", (9000, 9000)))  # 81 MP in a few kB
    assert len(data) < 100_000
    response = upload(client, "/api/photo", data)
    assert response.status_code == 400
    assert response.get_json()["error"] == (
        "photo: too many pixels: 9000 x 9000 is 81.0 MP, over the 50 MP a photo may have "
        "(scale it down)"
    )


class GatedDescriber:
    """A describer that says when it starts and waits to be let go."""

    def __init__(self, describer):
        self.describer = describer
        self.started = threading.Semaphore(0)
        self.go = threading.Event()

    def describe_image(self, image):
        self.started.release()
        assert self.go.wait(30)
        return self.describer.describe_image(image)


def test_at_most_two_photos_are_described_at_once(web_service):
    from dataclasses import replace

    from capstone.frontends.web.app import create_app
    from capstone.frontends.web.service import MAX_PHOTOS_AT_ONCE

    gated = GatedDescriber(web_service.describer)
    slots = threading.BoundedSemaphore(MAX_PHOTOS_AT_ONCE)
    service = replace(web_service, describer=gated, photo_slots=slots, photo_wait=0)
    app = create_app(service)
    statuses = []

    def post():
        statuses.append(upload(app.test_client(), "/api/photo", jpeg_bytes()).status_code)

    workers = [threading.Thread(target=post) for _ in range(MAX_PHOTOS_AT_ONCE)]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:  # both are describing now
            assert gated.started.acquire(timeout=30)
        third = upload(app.test_client(), "/api/photo", jpeg_bytes())
        assert third.status_code == 503 and third.headers["Retry-After"] == "5"
        assert third.get_json()["error"] == (
            "the server is describing 2 other photos: try again in a few seconds"
        )
    finally:
        gated.go.set()
        for worker in workers:
            worker.join(30)
    assert statuses == [200, 200]
    assert upload(app.test_client(), "/api/photo", jpeg_bytes()).status_code == 200


def test_an_upload_is_never_a_named_file(client, web_service, monkeypatch, tmp_path):
    """Over 500 kB werkzeug spools an upload to an anonymous temporary file; nothing in the
    temporary folder has a name while the photo is described (so Ctrl-C leaves nothing)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []
    real = web_service.describer.describe_image

    def spy(image):
        seen.append(sorted(os.listdir(tmp_path)))
        return real(image)

    monkeypatch.setattr(web_service.describer, "describe_image", spy)
    pixels = np.random.default_rng(5).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    data = png_bytes(Image.fromarray(pixels))
    assert len(data) > 1_000_000
    assert upload(client, "/api/photo", data).status_code == 200
    assert seen == [[]] and os.listdir(tmp_path) == []


def test_a_form_with_too_many_fields_says_so(client):
    from capstone.frontends.web.app import MAX_FORM_PARTS

    fields = {f"f{i}": "1" for i in range(1100)}
    for route in ("/api/photo", "/photo"):
        response = upload(client, route, jpeg_bytes(), **fields)
        assert response.status_code == 413
        body = response.get_data(as_text=True)
        assert f"the form is too large: more than {MAX_FORM_PARTS} fields" in body
        assert "20 MB" not in body
    long_field = upload(client, "/api/photo", jpeg_bytes(), k="1" * 600_000)
    assert long_field.status_code == 413 and "over 500 kB" in long_field.get_json()["error"]


def test_the_413_page_leads_back_to_the_photo_form(client):
    response = upload(client, "/photo", b"x" * (21 * 2**20))
    page = response.get_data(as_text=True)
    assert response.status_code == 413 and "the upload is larger than 20 MB" in page
    assert '<a href="/photo">Back to the photo search</a>' in page
    assert '<a href="/">Back to the search</a>' in client.get("/nowhere").get_data(as_text=True)


# -- the Host header and werkzeug's own responses

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


@pytest.mark.parametrize(
    ("host", "names"),
    [("127.0.0.1", LOOPBACK), ("::1", LOOPBACK), ("localhost", LOOPBACK), ("0.0.0.0", None),
     ("::", None),
     ("192.168.1.5", ("192.168.1.5",)), ("fe80::1", ("[fe80::1]",)), ("My-Box", ("my-box",))],
)  # fmt: skip
def test_host_names_of_a_bound_address(host, names):
    from capstone.frontends.web.app import host_names

    assert host_names(host) == names


@pytest.mark.parametrize(
    ("host", "status"),
    [("localhost", 200), ("127.0.0.1", 200), ("[::1]", 200), ("LOCALHOST:80", 200),
     ("evil.example", 400), ("evil.example:80", 400), ("localhost:8000", 400),
     ("localhost.evil.example", 400), ("127.0.0.1@evil", 400), ("", 400)],
)  # fmt: skip
def test_a_request_for_another_host_name_is_400(client, host, status):
    response = client.get("/api/about", headers={"Host": host})
    assert response.status_code == status
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    if status == 400:
        assert response.get_json()["error"] == (
            f"this server answers requests for 127.0.0.1:80, [::1]:80 or localhost:80, not "
            f"Host: {host or '(none)'}; to serve another name, start it with --host NAME"
        )
        page = client.get("/", headers={"Host": host})
        assert page.status_code == 400 and "to serve another name" in page.get_data(as_text=True)


def test_a_server_bound_to_every_interface_answers_any_name(web_service):
    from capstone.frontends.web.app import create_app, host_names

    client = create_app(web_service, hosts=host_names("0.0.0.0")).test_client()
    assert client.get("/api/about", headers={"Host": "my-laptop.lan:8000"}).status_code == 200


def test_werkzeugs_own_errors_carry_the_headers_and_no_versions(live_url):
    import http.client
    from urllib.parse import urlsplit

    from capstone.frontends.web.app import SECURITY_HEADERS

    address = urlsplit(live_url)

    def get(path, headers=()):
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        connection.putrequest("GET", path)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        connection.close()
        return response

    for response, status in [
        (get("/about"), 200),
        (get("/?q=" + "a" * 70_000), 414),
        (get("/", [(f"X-{i}", "1") for i in range(120)]), 431),
    ]:
        assert response.status == status
        assert response.getheader("Server") == "capstone"
        for name, value in SECURITY_HEADERS.items():
            assert response.getheader(name) == value, (status, name)


def test_creating_an_app_leaves_the_werkzeug_logger_alone(web_service):
    """No global side effect: the server's `RequestHandler` quiets werkzeug, not the app."""
    from capstone.frontends.web.app import create_app

    logger = logging.getLogger("werkzeug")
    before = logger.level
    try:
        logger.setLevel(logging.INFO)
        app = create_app(web_service)
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(before)
    assert app.extensions["capstone"].service is web_service


def test_the_server_logs_errors_but_no_line_per_request(live_url, caplog):
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(live_url)
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        with urllib.request.urlopen(live_url + "/about", timeout=30) as response:
            assert response.status == 200
        # werkzeug answers a bad request line itself, logging it as an error
        with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            assert b"Error code: 400" in sock.makefile("rb").read()  # read to the end: logged
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "werkzeug"]
    assert len(logged) == 1 and logged[0][0] == "ERROR", logged
    assert "code 400" in logged[0][1] and "/about" not in logged[0][1]


def test_the_live_server_refuses_a_rebound_name(live_url):
    request = urllib.request.Request(live_url + "/api/about", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 400
    port = live_url.rsplit(":", 1)[1]
    assert f"answers requests for 127.0.0.1:{port}" in json.load(info.value)["error"]


def test_serve_refuses_a_run_of_other_data(home, capsys, tmp_path, monkeypatch):
    """As `search` does: the newest run was trained on other data, so serve stops (exit 2)."""
    from werkzeug.serving import BaseWSGIServer

    from capstone.data import minicoco

    def never(self, *args, **kwargs):
        pytest.fail("serve served a run of other data")

    monkeypatch.setattr(BaseWSGIServer, "serve_forever", never)
    other = tmp_path / "other"
    minicoco.generate(other, 60, seed=1)
    for command in (["search", "a dog"], ["serve", "--port", "0"]):
        code, out, err = run(capsys, *command, "--data", other)
        assert code == 2 and out == ""
        assert f"error: run {RUN} (" in err and "does not match: data: trained on" in err
        assert "pass --other-data to go on anyway" in err


# -- the pages' smaller promises


def test_a_threshold_that_leaves_nothing_says_the_best_score(client):
    best = client.get("/api/search?q=dog&k=5").get_json()["results"][0]["score"]
    answer = client.get("/api/search?q=dog&k=5&threshold=0.99").get_json()
    assert answer["results"] == [] and answer["best_score"] == best
    page = client.get("/?q=dog&k=5&threshold=0.99").get_data(as_text=True)
    assert f"No image scores ≥ 0.99; the best scores {best:.3f}." in page
    assert 'name="threshold" value="0.99" min="-1" max="1" step="any"' in page
    assert 'id="empty"' not in client.get("/?q=dog&k=5").get_data(as_text=True)


def test_the_image_page_keeps_the_search_to_go_back_to(client, hostile_image):
    search = client.get("/?q=a+dog&k=7&threshold=0.1&images=all").get_data(as_text=True)
    link = re.search(rf'data-image-id="{tiles(search)[0]}">\s*<a href="([^"]+)"', search)[1]
    link = html.unescape(link)
    assert "k=7" in link and "threshold=0.1" in link and "images=all" in link
    page = client.get(link).get_data(as_text=True)
    back = html.unescape(re.search(r'<p class="back"><a href="([^"]+)"', page)[1])
    assert back.startswith("/?") and all(
        part in back for part in ("q=a+dog", "k=7", "threshold=0.1", "images=all")
    )
    assert "k=7" in html.unescape(re.search(r'id="similar">\s*<li[^>]*>\s*<a href="([^"]+)"',
                                             page)[1])  # fmt: skip


def test_the_image_page_counts_the_images_the_search_counted(client, web_service):
    validation = set(web_service.engines["validation"].database.image_ids.tolist())
    training = next(int(i) for i in web_service.engines["all"].database.image_ids
                    if int(i) not in validation)  # fmt: skip
    n_images = client.get("/api/search?q=dog").get_json()["n_images"]
    rank = client.get(f"/api/rank?q=dog&image_id={training}").get_json()
    assert rank["n_images"] == n_images == len(validation) and not rank["in_database"]
    page = client.get(f"/image/{training}?q=dog").get_data(as_text=True)
    assert re.search(rf"It would rank\s+<strong>[\d,]+</strong> among the {n_images:,} "
                     r"validation images \(it is not one of them\)", page)  # fmt: skip


def test_every_page_links_the_favicon(client):
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in (
        client.get("/about").get_data(as_text=True)
    )
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.get_data(as_text=True).startswith("<svg")


def test_the_photo_page_shows_the_photo_it_describes(client):
    page = upload(client, "/photo", jpeg_bytes(size=(640, 480)), k="3").get_data(as_text=True)
    src = re.search(r'<img id="preview" src="([^"]+)"', page)[1]
    assert src.startswith("data:image/jpeg;base64,")
    import base64

    thumbnail = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    assert thumbnail.size == (200, 150)
    assert "preview" not in upload(client, "/api/photo", jpeg_bytes()).get_json()
