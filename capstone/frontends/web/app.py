"""The web app: server-rendered pages and a JSON API over one `SearchService`.

`create_app` puts the parts together: the `pages` blueprint (``/``, ``/image/<id>``,
``/photo``, ``/about``: `capstone.frontends.web.pages`), the `api` blueprint (``/api/...``:
`capstone.frontends.web.api`), the app-wide error handlers (`capstone.frontends.web.errors`)
and the service, stored on the app (`capstone.frontends.web.context`). This module holds what
guards every request: the ``Host`` check, the security headers and the limits on uploads.

Safe by default: templates escape every caption and query (Jinja autoescaping), every response
(werkzeug's own errors too, through `RequestHandler`) carries `SECURITY_HEADERS`: a
Content-Security-Policy that allows scripts and styles from this server only and images from
anywhere (the photos load from each image's ``coco_url``; only http and https URLs are ever
rendered, see `capstone.search.display.usable_url`); a request whose ``Host`` is not a name
the server was bound to is refused (DNS rebinding cannot reach a loopback server); no request
value ever names a file; an upload is never written under a name; errors are pages (or JSON
under ``/api``), never tracebacks.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler

from capstone.frontends.web.api import api
from capstone.frontends.web.context import EXTENSION, Site, site
from capstone.frontends.web.errors import HANDLERS, failure
from capstone.frontends.web.pages import pages
from capstone.frontends.web.service import SearchService

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "LOOPBACK_HOSTS",
    "MAX_FORM_PARTS",
    "MAX_UPLOAD_BYTES",
    "SECURITY_HEADERS",
    "RequestHandler",
    "create_app",
    "host_names",
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
    """werkzeug's request handler, saying no versions, sending `SECURITY_HEADERS` with the
    errors it answers itself (414 URI too long, 431 headers too large, 400 bad request line),
    which never reach the app, and logging no line per request.

    The server's request handler, not the app, quiets the log: creating an app (in a test, a
    notebook) leaves the ``werkzeug`` logger as it was.
    """

    def log(self, type: str, message: str, *args) -> None:
        # werkzeug logs each request at "info"; a class demo's terminal wants only the URL line
        # (`python -m capstone serve` prints it) and errors
        if type != "info":
            super().log(type, message, *args)

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
    """A Flask app answering from ``service``: the `pages` and `api` blueprints, the error
    `HANDLERS`, the ``Host`` check and `SECURITY_HEADERS`. Creating one changes no global
    state (werkzeug's request log is quieted by `RequestHandler`, in the server only).

    Parameters
    ----------
    service : SearchService
        Stored on the app as a `Site` (``app.extensions["capstone"]``), where views read it.
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
    app.extensions[EXTENSION] = Site.of(service, hosts)
    app.register_blueprint(pages)
    app.register_blueprint(api)
    for error, handler in HANDLERS.items():
        app.register_error_handler(error, handler)
    app.before_request(_check_host)
    app.after_request(_add_security_headers)
    return app


def _check_host():
    """None (go on) for a ``Host`` the site answers, on the server's port; else a 400."""
    allowed = site().hosts
    if allowed is None:
        return None
    given = request.headers.get("Host", "")
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


def _add_security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response
