"""Tests of the web app (`capstone.frontends.web`) through Flask's test client: every route,
every bad input, escaping, the security headers, and answers equal to the library's."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from cli_support import RUN, argparse_exit, run
from conftest import HOSTILE
from markupsafe import escape
from PIL import Image

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
        ("k=0", "k must be a whole number from 1 to 100, got 0"),
        (f"k={MAX_K + 1}", f"k must be a whole number from 1 to 100, got {MAX_K + 1}"),
        ("k=ten", "k must be a whole number from 1 to 100, got 'ten'"),
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
    from capstone.frontends.web.app import csv_response

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


def test_serve_says_its_url_answers_and_stops_on_ctrl_c(home):
    """The real command in a child process: the URL line, a JSON answer, Ctrl-C, exit 0."""
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
        child.send_signal(signal.SIGINT)
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
