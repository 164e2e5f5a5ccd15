"""What every view reads from the app it runs in: the `SearchService` and what it serves.

`create_app` stores one `Site` on the app (``app.extensions["capstone"]``); a view reaches it
through `site` or `service`, which read Flask's ``current_app``, so no view captures the
service in a closure and one process may hold several apps.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from flask import current_app, request

from capstone.frontends.web.service import BadInput, SearchService

__all__ = ["EXTENSION", "Site", "photo_answer", "service", "site"]

#: The key of the `Site` in ``app.extensions``.
EXTENSION = "capstone"


@dataclass
class Site:
    """What one app serves.

    Attributes
    ----------
    service : SearchService
    about : dict
        `SearchService.about`, for every page's header; ``/about`` reads it afresh (a report
        written since the server started) and keeps the new one.
    hosts : frozenset[str] or None
        The lower-cased names a request's ``Host`` may give; None: any name.
    """

    service: SearchService
    about: dict
    hosts: frozenset[str] | None

    @classmethod
    def of(cls, service: SearchService, hosts: Collection[str] | None) -> Site:
        """``service``'s site, answering requests for ``hosts`` (None: any name)."""
        names = None if hosts is None else frozenset(h.lower() for h in hosts)
        return cls(service, service.about(), names)


def site() -> Site:
    """The `Site` of the app handling the current request."""
    return current_app.extensions[EXTENSION]


def service() -> SearchService:
    """The `SearchService` of the app handling the current request."""
    return site().service


def photo_answer(preview: bool = False) -> dict:
    """The uploaded photo's answer (``POST /photo`` and ``/api/photo``), read from the upload
    as werkzeug holds it: in memory, or past 500 kB in an anonymous temporary file (never
    named, gone when closed, even if the server is killed)."""
    searcher = service()
    searcher.check_photo_queries()  # before the upload is read
    upload = request.files.get("photo")
    if upload is None or not upload.filename:
        raise BadInput("photo: choose a photo file to upload")
    args = request.values
    return searcher.photo(
        upload.stream, args.get("k"), args.get("space"), args.get("images"), preview=preview
    )
