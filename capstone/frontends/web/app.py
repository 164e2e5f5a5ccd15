"""The web app: server-rendered pages and a JSON API over one `SearchService`.

Pages: ``/`` (search), ``/image/<id>`` (an image: captions, tags, similar images, its rank for
the last query), ``/photo`` (upload a photo: similar images and tags), ``/about`` (the run and
its data). API: ``/api/search``, ``/api/similar/<id>``, ``/api/tags/<id>``, ``/api/rank``,
``POST /api/photo``; ``/api/search?format=csv`` exports a result list.

Safe by default: templates escape every caption and query (Jinja autoescaping), every response
(werkzeug's own errors too, through `RequestHandler`) carries `SECURITY_HEADERS`: a
Content-Security-Policy that allows scripts and styles from this server only and images from
anywhere (the photos load from each image's ``coco_url``; only http and https URLs are ever
rendered, see `usable_url`); a request whose ``Host`` is not a name the server was bound to
is refused (DNS rebinding cannot reach a loopback server); no request value ever names a
file; an upload is never written under a name; errors are pages (or JSON under ``/api``),
never tracebacks.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Collection

from flask import Flask, Response, jsonify, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler

from capstone.frontends.web.service import (
    MAX_K,
    MAX_QUERY_CHARS,
    BadInput,
    Busy,
    NotFound,
    PhotoUnavailable,
    SearchService,
)

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "LOOPBACK_HOSTS",
    "MAX_FORM_PARTS",
    "MAX_UPLOAD_BYTES",
    "SECURITY_HEADERS",
    "RequestHandler",
    "create_app",
    "host_names",
    "spreadsheet_text",
]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# the photo form has four parts (photo, k, space, images) of a few bytes each but the photo
MAX_FORM_PARTS = 16
# werkzeug also checks each chunk it reads (64 kB) against this: Flask's default, not less
MAX_FORM_FIELD_BYTES = 500_000
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' http: https: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the page URL holds the query: photo hosts need not see it
}
#: The names a loopback server answers to (``Host`` without its port).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_HOST = re.compile(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(?::(\d{1,5}))?")


def host_names(host: str) -> tuple[str, ...] | None:
    """The ``Host`` names a server bound to ``host`` (``--host``) answers; None: any name.

    A loopback address answers its loopback names (`LOOPBACK_HOSTS`); another address or name
    only itself; a wildcard address (``0.0.0.0``, ``::``) binds every interface and so answers
    any name (a server reachable from other machines cannot know all of them).
    """
    if host in ("", "0.0.0.0", "::"):
        return None
    if host in ("127.0.0.1", "localhost", "::1"):
        return LOOPBACK_HOSTS
    return ((f"[{host}]" if ":" in host else host).lower(),)


class RequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, saying no versions and sending `SECURITY_HEADERS` with the
    errors it answers itself (414 URI too long, 431 headers too large, 400 bad request line),
    which never reach the app."""

    def version_string(self) -> str:
        return "capstone"

    def send_error(self, code, message=None, explain=None) -> None:
        self._own_error = True
        super().send_error(code, message, explain)

    def end_headers(self) -> None:
        if getattr(self, "_own_error", False):
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
        super().end_headers()


def create_app(service: SearchService, *, hosts: Collection[str] | None = LOOPBACK_HOSTS) -> Flask:
    """A Flask app answering from ``service``.

    Parameters
    ----------
    service : SearchService
    hosts : Collection[str] or None, optional (default: `LOOPBACK_HOSTS`)
        The names a request's ``Host`` header may give (`host_names` of the bound address); its
        port must be the server's. Any other is a 400. None accepts any name.

    Examples
    --------
    With real data (shown, not run as a test)::

        app = create_app(SearchService.load(Run.load("demo"), load_dataset()))
        app.test_client().get("/api/search?q=a+dog").get_json()["results"][0]
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES  # only photo uploads have a body
    app.config["MAX_FORM_PARTS"] = MAX_FORM_PARTS
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_FORM_FIELD_BYTES
    # werkzeug logs each request; a class demo's terminal wants only the URL line and errors
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    limits = {"max_query_chars": MAX_QUERY_CHARS, "max_k": MAX_K}
    facts = {"about": service.about()}  # for every page's header; /about reads it afresh
    allowed = None if hosts is None else {h.lower() for h in hosts}

    @app.before_request
    def check_host():
        given = request.headers.get("Host", "")
        if allowed is None:
            return None
        match = _HOST.fullmatch(given)
        port = request.environ.get("SERVER_PORT", "80")
        if match and match[1].lower() in allowed and (match[2] or "80") == port:
            return None
        names = [f"{h}:{port}" for h in sorted(allowed)]
        names = " or ".join(filter(None, [", ".join(names[:-1]), names[-1]]))
        return failure(
            400,
            f"this server answers requests for {names}, not Host: {given or '(none)'}; to "
            "serve another name, start it with --host NAME",
        )

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    def page(template: str, status: int = 200, **values):
        values.setdefault("about", facts["about"])
        return render_template(template, limits=limits, **values), status

    @app.errorhandler(BadInput)
    def bad_input(error: BadInput):
        return failure(400, str(error))

    @app.errorhandler(NotFound)
    def not_found(error: NotFound):
        return failure(404, error.args[0])

    @app.errorhandler(PhotoUnavailable)
    def photo_unavailable(error: PhotoUnavailable):
        return failure(503, str(error))

    @app.errorhandler(Busy)
    def busy(error: Busy):
        response, status = failure(503, str(error))
        return response, status, {"Retry-After": "5"}

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code == 413:
            return failure(413, too_large())
        return failure(error.code or 500, error.description or error.name)

    def too_large() -> str:
        """Which of werkzeug's limits a 413 hit: it raises the same error for each."""
        size = request.content_length
        if size is None or size > MAX_UPLOAD_BYTES:
            return f"the upload is larger than {MAX_UPLOAD_BYTES // 2**20} MB"
        return (
            f"the form is too large: more than {MAX_FORM_PARTS} fields, or a field other than "
            f"the photo over {MAX_FORM_FIELD_BYTES // 1000} kB (the photo form sends a photo, "
            "k, space and images)"
        )

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        app.logger.exception("unexpected error")  # the traceback goes to the server's log only
        return failure(500, "something went wrong on the server; the log says what")

    def failure(status: int, message: str):
        if request.path.startswith("/api/"):
            return jsonify({"error": message, "status": status}), status
        if request.path.startswith("/photo"):
            back = (url_for("photo_page"), "Back to the photo search")
        else:
            back = (url_for("search_page"), "Back to the search")
        return page("error.html", status, code=status, message=message, back=back)

    # -- pages -------------------------------------------------------------------------------

    @app.get("/")
    def search_page():
        args = request.args
        form = {
            "q": args.get("q", ""),
            "k": args.get("k", ""),
            "threshold": args.get("threshold", ""),
            "images": args.get("images", "validation"),
        }
        if not form["q"].strip():
            return page("search.html", form=form, answer=None, error=None)
        try:
            answer = service.search(form["q"], form["k"], form["threshold"], form["images"])
        except BadInput as e:
            return page("search.html", 400, form=form, answer=None, error=str(e))
        return page("search.html", form=form, answer=answer, error=None)

    @app.get("/image/<int:image_id>")
    def image_page(image_id: int):
        args = request.args
        image = service.image(image_id)
        images = args.get("images") or "validation"
        similar = service.similar(image_id, args.get("k"), args.get("space"), images)
        tags = service.tags(image_id)
        query, rank, rank_error = args.get("q", ""), None, None
        if query.strip():
            try:
                rank = service.rank(query, image_id, images)
            except BadInput as e:
                rank_error = str(e)
        # the search to come back to (and to carry on to the images it links)
        search = {"q": query or None, "k": args.get("k") or None,
                  "threshold": args.get("threshold") or None, "images": images}  # fmt: skip
        return page(
            "image.html",
            image=image,
            similar=similar,
            tags=tags,
            query=query,
            rank=rank,
            rank_error=rank_error,
            search=search,
        )

    def photo_answer(preview: bool = False) -> dict:
        """The uploaded photo's answer, read from the upload as werkzeug holds it: in memory,
        or past 500 kB in an anonymous temporary file (never named, gone when closed, even if
        the server is killed)."""
        service.check_photo_queries()  # before the upload is read
        upload = request.files.get("photo")
        if upload is None or not upload.filename:
            raise BadInput("photo: choose a photo file to upload")
        args = request.values
        return service.photo(
            upload.stream, args.get("k"), args.get("space"), args.get("images"), preview=preview
        )

    @app.route("/photo", methods=["GET", "POST"])
    def photo_page():
        form = {key: request.values.get(key, "") for key in ("k", "space", "images")}
        if request.method == "GET":
            return page("photo.html", form=form, answer=None, error=None)
        try:
            answer = photo_answer(preview=True)
        except BadInput as e:
            return page("photo.html", 400, form=form, answer=None, error=str(e))
        return page("photo.html", form=form, answer=answer, error=None)

    @app.get("/about")
    def about_page():
        facts["about"] = service.about()  # a report written since the server started
        return page("about.html")

    # -- JSON API ----------------------------------------------------------------------------

    @app.get("/api/search")
    def api_search():
        args = request.args
        answer = service.search(args.get("q"), args.get("k"), args.get("threshold"),
                                args.get("images"))  # fmt: skip
        export = args.get("format") or "json"
        if export == "csv":
            return csv_response(answer)
        if export != "json":
            raise BadInput(f"format must be json or csv, got {export!r}")
        return jsonify(answer)

    @app.get("/api/similar/<int:image_id>")
    def api_similar(image_id: int):
        args = request.args
        return jsonify(
            service.similar(image_id, args.get("k"), args.get("space"), args.get("images"))
        )

    @app.get("/api/tags/<int:image_id>")
    def api_tags(image_id: int):
        return jsonify(service.tags(image_id, request.args.get("k")))

    @app.get("/api/rank")
    def api_rank():
        args = request.args
        if not args.get("image_id"):
            raise BadInput("image_id is missing: /api/rank?q=...&image_id=...")
        return jsonify(service.rank(args.get("q"), args.get("image_id"), args.get("images")))

    @app.post("/api/photo")
    def api_photo():
        return jsonify(photo_answer())

    @app.get("/api/about")
    def api_about():
        return jsonify(service.about())

    return app


def spreadsheet_text(text: str) -> str:
    """``text`` as a CSV cell a spreadsheet shows as text: a leading ``=``, ``+``, ``-``, ``@``,
    tab or carriage return would start a formula, so such a cell gets a ``'`` in front."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_response(answer: dict) -> Response:
    """A search's results as a CSV download: rank, image id, score, URL, first caption.

    Every text cell goes through `spreadsheet_text`; the numbers are the app's own.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["rank", "image_id", "score", "url", "caption"])
    for r in answer["results"]:
        text = (r["url"] or "", r["captions"][0] if r["captions"] else "")
        writer.writerow([r["rank"], r["image_id"], r["score"], *map(spreadsheet_text, text)])
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="capstone-search.csv"'},
    )
