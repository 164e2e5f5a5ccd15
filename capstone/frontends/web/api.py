"""The JSON API under ``/api``: ``/api/search`` (``?format=csv`` exports the result list),
``/api/similar/<id>``, ``/api/tags/<id>``, ``/api/rank``, ``POST /api/photo``, ``/api/about``.

Each answers `SearchService`'s dict as JSON; an error is JSON too, ``{"error": message,
"status": code}`` (`capstone.frontends.web.errors`).
"""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, jsonify, request

from capstone.common.spreadsheet import spreadsheet_text
from capstone.frontends.web.context import photo_answer, service
from capstone.frontends.web.service import BadInput

__all__ = ["api", "csv_response"]

api = Blueprint("api", __name__, url_prefix="/api")


@api.get("/search")
def search():
    args = request.args
    answer = service().search(args.get("q"), args.get("k"), args.get("threshold"),
                              args.get("images"))  # fmt: skip
    export = args.get("format") or "json"
    if export == "csv":
        return csv_response(answer)
    if export != "json":
        raise BadInput(f"format must be json or csv, got {export!r}")
    return jsonify(answer)


@api.get("/similar/<int:image_id>")
def similar(image_id: int):
    args = request.args
    return jsonify(
        service().similar(image_id, args.get("k"), args.get("space"), args.get("images"))
    )


@api.get("/tags/<int:image_id>")
def tags(image_id: int):
    return jsonify(service().tags(image_id, request.args.get("k")))


@api.get("/rank")
def rank():
    args = request.args
    if not args.get("image_id"):
        raise BadInput("image_id is missing: /api/rank?q=...&image_id=...")
    return jsonify(service().rank(args.get("q"), args.get("image_id"), args.get("images")))


@api.post("/photo")
def photo():
    return jsonify(photo_answer())


@api.get("/about")
def about():
    return jsonify(service().about())


def csv_response(answer: dict) -> Response:
    """A search's results as a CSV download: rank, image id, score, URL, first caption.

    Every text cell goes through `capstone.common.spreadsheet.spreadsheet_text`; the numbers
    are the app's own.
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
