"""Errors, app-wide: JSON under ``/api``, an HTML page elsewhere, never a traceback.

`HANDLERS` maps each error to its answer; `create_app` registers them on the app, so they
answer for both blueprints and for a URL that matches no route.

- `BadInput`: 400, naming the parameter;
- `NotFound`: 404, "there is no image ...";
- `PhotoUnavailable`: 503, saying how to get ResNet-18's weights;
- `Busy`: 503 with ``Retry-After: 5``;
- werkzeug's `HTTPException`: its status and description (for a 413, which limit was hit);
- any other exception: 500, "something went wrong"; the traceback goes to the server's log.
"""

from __future__ import annotations

from flask import current_app, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from capstone.frontends.web.pages import page
from capstone.frontends.web.service import BadInput, Busy, NotFound, PhotoUnavailable

__all__ = ["HANDLERS", "failure"]


def failure(status: int, message: str):
    """The answer to a failed request: ``{"error": message, "status": status}`` under
    ``/api``, else the error page, with a link back to the form the request came from."""
    if request.path.startswith("/api/"):
        return jsonify({"error": message, "status": status}), status
    if request.path.startswith("/photo"):
        back = (url_for("pages.photo"), "Back to the photo search")
    else:
        back = (url_for("pages.search"), "Back to the search")
    return page("error.html", status, code=status, message=message, back=back)


def _too_large() -> str:
    """Which of the app's limits a 413 hit: werkzeug raises the same error for each."""
    config = current_app.config
    most = config["MAX_CONTENT_LENGTH"]
    size = request.content_length
    if size is None or size > most:
        return f"the upload is larger than {most // 2**20} MB"
    return (
        f"the form is too large: more than {config['MAX_FORM_PARTS']} fields, or a field other "
        f"than the photo over {config['MAX_FORM_MEMORY_SIZE'] // 1000} kB (the photo form sends "
        "a photo, k, space and images)"
    )


def _http_error(error: HTTPException):
    if error.code == 413:
        return failure(413, _too_large())
    return failure(error.code or 500, error.description or error.name)


def _busy(error: Busy):
    response, status = failure(503, str(error))
    return response, status, {"Retry-After": "5"}


def _unexpected(error: Exception):
    current_app.logger.exception("unexpected error")  # the traceback goes to the server's log
    return failure(500, "something went wrong on the server; the log says what")


#: Each error the app answers, and how.
HANDLERS = {
    BadInput: lambda error: failure(400, str(error)),
    NotFound: lambda error: failure(404, error.args[0]),  # str() of a KeyError adds quotes
    PhotoUnavailable: lambda error: failure(503, str(error)),
    Busy: _busy,
    HTTPException: _http_error,
    Exception: _unexpected,
}
