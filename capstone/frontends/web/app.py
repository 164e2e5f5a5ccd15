"""The web app: server-rendered pages and a JSON API over one `SearchService`.

Pages: ``/`` (search), ``/image/<id>`` (an image: captions, tags, similar images, its rank for
the last query), ``/photo`` (upload a photo: similar images and tags), ``/about`` (the run and
its data). API: ``/api/search``, ``/api/similar/<id>``, ``/api/tags/<id>``, ``/api/rank``,
``POST /api/photo``; ``/api/search?format=csv`` exports a result list.

Safe by default: templates escape every caption and query (Jinja autoescaping), every response
carries a Content-Security-Policy that allows scripts and styles from this server only and
images from anywhere (the photos load from each image's ``coco_url``), no request value ever
names a file, and errors are pages (or JSON under ``/api``), never tracebacks.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from capstone.frontends.web.service import (
    MAX_K,
    MAX_QUERY_CHARS,
    BadInput,
    NotFound,
    PhotoUnavailable,
    SearchService,
)

__all__ = ["CONTENT_SECURITY_POLICY", "MAX_UPLOAD_BYTES", "create_app"]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' http: https: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def create_app(service: SearchService) -> Flask:
    """A Flask app answering from ``service``.

    Examples
    --------
    With real data (shown, not run as a test)::

        app = create_app(SearchService.load(Run.load("demo"), load_dataset()))
        app.test_client().get("/api/search?q=a+dog").get_json()["results"][0]
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES  # only photo uploads have a body
    # werkzeug logs each request; a class demo's terminal wants only the URL line and errors
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    limits = {"max_query_chars": MAX_QUERY_CHARS, "max_k": MAX_K}
    facts = {"about": service.about()}  # for every page's header; /about reads it afresh

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        # the page URL holds the query: photo hosts need not see it
        response.headers["Referrer-Policy"] = "no-referrer"
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

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code == 413:
            return failure(413, f"the upload is larger than {MAX_UPLOAD_BYTES // 2**20} MB")
        return failure(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        app.logger.exception("unexpected error")  # the traceback goes to the server's log only
        return failure(500, "something went wrong on the server; the log says what")

    def failure(status: int, message: str):
        if request.path.startswith("/api/"):
            return jsonify({"error": message, "status": status}), status
        return page("error.html", status, code=status, message=message)

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
        return page(
            "image.html",
            image=image,
            similar=similar,
            tags=tags,
            query=query,
            rank=rank,
            rank_error=rank_error,
            images=images,
        )

    def photo_answer() -> dict:
        """The uploaded photo's answer; the upload goes to a temporary file of the server's."""
        service.check_photo_queries()  # before the upload is written anywhere
        upload = request.files.get("photo")
        if upload is None or not upload.filename:
            raise BadInput("photo: choose a photo file to upload")
        handle, path = tempfile.mkstemp(prefix="capstone-upload-")
        try:
            with os.fdopen(handle, "wb") as file:
                upload.save(file)
            args = request.values
            return service.photo(path, args.get("k"), args.get("space"), args.get("images"))
        finally:
            os.unlink(path)

    @app.route("/photo", methods=["GET", "POST"])
    def photo_page():
        form = {key: request.values.get(key, "") for key in ("k", "space", "images")}
        if request.method == "GET":
            return page("photo.html", form=form, answer=None, error=None)
        try:
            answer = photo_answer()
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


def csv_response(answer: dict) -> Response:
    """A search's results as a CSV download: rank, image id, score, URL, first caption."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["rank", "image_id", "score", "url", "caption"])
    for r in answer["results"]:
        caption = r["captions"][0] if r["captions"] else ""
        # a leading =, +, - or @ would be a formula to a spreadsheet: quote it as text
        if caption[:1] in ("=", "+", "-", "@"):
            caption = "'" + caption
        writer.writerow([r["rank"], r["image_id"], r["score"], r["url"], caption])
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="capstone-search.csv"'},
    )
