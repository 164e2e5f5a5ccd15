"""The HTML pages: ``/`` (search), ``/image/<id>`` (an image: captions, tags, similar images,
its rank for the last query), ``/photo`` (upload a photo: similar images and tags), ``/about``
(the run and its data).

A bad value in a form is shown above the form again (HTTP 400); every other error is the
app-wide error page (`capstone.frontends.web.errors`).
"""

from __future__ import annotations

from flask import Blueprint, render_template, request

from capstone.frontends.web.context import photo_answer, service, site
from capstone.frontends.web.service import MAX_K, MAX_QUERY_CHARS, BadInput

__all__ = ["page", "pages"]

pages = Blueprint("pages", __name__)

#: The limits the forms show (and enforce with ``maxlength``, ``max``).
LIMITS = {"max_query_chars": MAX_QUERY_CHARS, "max_k": MAX_K}


def page(template: str, status: int = 200, **values) -> tuple[str, int]:
    """``template`` rendered with the run's facts for the header (unless ``values`` gives
    ``about``) and `LIMITS`, and the status to answer with."""
    values.setdefault("about", site().about)
    return render_template(template, limits=LIMITS, **values), status


@pages.get("/")
def search():
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
        answer = service().search(form["q"], form["k"], form["threshold"], form["images"])
    except BadInput as e:
        return page("search.html", 400, form=form, answer=None, error=str(e))
    return page("search.html", form=form, answer=answer, error=None)


@pages.get("/image/<int:image_id>")
def image(image_id: int):
    args, searcher = request.args, service()
    shown = searcher.image(image_id)
    images = args.get("images") or "validation"
    similar = searcher.similar(image_id, args.get("k"), args.get("space"), images)
    tags = searcher.tags(image_id)
    query, rank, rank_error = args.get("q", ""), None, None
    if query.strip():
        try:
            rank = searcher.rank(query, image_id, images)
        except BadInput as e:
            rank_error = str(e)
    # the search to come back to (and to carry on to the images it links)
    back = {"q": query or None, "k": args.get("k") or None,
            "threshold": args.get("threshold") or None, "images": images}  # fmt: skip
    return page(
        "image.html",
        image=shown,
        similar=similar,
        tags=tags,
        query=query,
        rank=rank,
        rank_error=rank_error,
        search=back,
    )


@pages.route("/photo", methods=["GET", "POST"])
def photo():
    form = {key: request.values.get(key, "") for key in ("k", "space", "images")}
    if request.method == "GET":
        return page("photo.html", form=form, answer=None, error=None)
    try:
        answer = photo_answer(preview=True)
    except BadInput as e:
        return page("photo.html", 400, form=form, answer=None, error=str(e))
    return page("photo.html", form=form, answer=answer, error=None)


@pages.get("/about")
def about():
    site().about = service().about()  # a report written since the server started
    return page("about.html")
