"""The queries of a trained run: ``search`` (images for a query, or the photos of a
collection), ``similar`` (images like an image), ``tags`` (words for an image), ``words``
(caption words like a word) and ``rank`` (where one image ranks for a query).

Each handler takes its flags as keyword arguments; ``**source`` are `load_run`'s (--data,
--glove, --run, --model, --other-data).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from capstone.data.paths import cache_dir
from capstone.frontends.cli.args import (
    add_data_args,
    add_json_arg,
    add_model_args,
    add_student_arg,
    add_weights_arg,
    coco_id,
    command,
    input_file,
    integer,
    load_run,
    output_file,
    query_terms,
)
from capstone.frontends.cli.output import (
    Result,
    ignored_line,
    note,
    other_data_warnings,
    result_lines,
    result_rows,
    word_rows,
)
from capstone.frontends.cli.photos import describe_photo, describe_photo_terms, search_collection
from capstone.search.engine import SearchEngine, SearchResult, ignored_words
from capstone.search.terms import MAX_TERMS, MAX_WEIGHT, parse_terms

__all__ = [
    "QUERY_SYNTAX",
    "add_parsers",
    "cmd_rank",
    "cmd_search",
    "cmd_similar",
    "cmd_tags",
    "cmd_words",
]

GRID_MAX = 36  # tiles in a --show grid: more make a huge PNG that takes minutes to draw

#: The query language (`capstone.search.terms`), said once for every command that takes one.
QUERY_SYNTAX = (
    f"A query is terms joined by ' + ' or ' - ' (a space before each: 'snow-covered' is one "
    f"word), at most {MAX_TERMS}; a term may start with a weight W: in (0, {MAX_WEIGHT:g}]. "
    "A term is words, or a photo file: one ending in a photo suffix (.jpg, .png, ...) or "
    "starting with ./ ../ / or ~/, which must exist (described with ResNet-18: see --weights). "
    "The query vector is normalize(sum of weight x unit embedding), e.g. "
    """'2:golden retriever + ./pool.jpg - fruit'."""
)


def _add_search_args(
    p: argparse.ArgumentParser, k: int | None, results: bool = True, images: bool = True
) -> None:
    """Data, model, -k and --json; ``images``: --all-images (for commands that search
    images); ``results``: --add, --subtract, --captions, --show and --exact."""
    add_data_args(p)
    add_model_args(p)
    if k is not None:
        p.add_argument("-k", type=integer(1), default=k, help=f"how many results ({k})")
    add_json_arg(p, "the results")
    if images:
        p.add_argument(
            "--all-images",
            action="store_true",
            help="search every image, not only the run's validation images",
        )
    if results:
        p.add_argument(
            "--add",
            action="append",
            default=[],
            metavar="TERM",
            help="add this term to the query: words or a photo file (repeatable)",
        )
        p.add_argument(
            "--subtract",
            action="append",
            default=[],
            metavar="TERM",
            help="subtract this term from the query: words or a photo file (repeatable)",
        )
        p.add_argument(
            "--captions",
            type=integer(0),
            default=1,
            metavar="N",
            help="captions printed per result (1)",
        )
        p.add_argument(
            "--show",
            type=output_file(".png", replace=True),
            metavar="PNG",
            help=f"save an image grid of the results (the first {GRID_MAX} at most)",
        )
        p.add_argument(
            "--exact",
            action="store_true",
            help="scan every image, even where the approximate index (exact scores, "
            "recall@10 >= 0.999) would answer",
        )


def add_parsers(sub) -> None:
    """The ``search``, ``similar``, ``tags``, ``words`` and ``rank`` commands."""
    p = command(
        sub,
        "search",
        cmd_search,
        help="images for a query (words, weights, + and - terms, photos)",
        description="Top-k images for a query, e.g. "
        'python -m capstone search "two dogs playing in the snow" -k 9. ' + QUERY_SYNTAX,
    )
    p.add_argument("text", nargs="?", metavar="QUERY", help="the query (see above)")
    p.add_argument(
        "--image",
        type=input_file,
        metavar="PHOTO",
        help="search by a photo instead: the run's images most like it",
    )
    p.add_argument(
        "--collection",
        metavar="NAME",
        help="search the photos of a collection (python -m capstone index)",
    )
    p.add_argument(
        "--paths",
        action="store_true",
        help="with --collection: print bare paths, one a line (for piping)",
    )
    add_weights_arg(p)
    add_student_arg(p)
    _add_search_args(p, k=9)

    p = command(
        sub,
        "similar",
        cmd_similar,
        help="images like an image",
        description="Top-k images like IMAGE_ID, in the semantic (embedding) "
        "space or in the raw ResNet descriptor space; --add and --subtract move it by terms "
        "of search's query language (words or photo files).",
    )
    p.add_argument("image_id", type=coco_id, metavar="IMAGE_ID", nargs="?")
    p.add_argument("--photo", type=input_file, metavar="PHOTO", help="an unseen photo instead")
    add_weights_arg(p)
    p.add_argument(
        "--space",
        choices=("semantic", "descriptor"),
        default="semantic",
        help="compare embeddings or raw descriptors (semantic)",
    )
    _add_search_args(p, k=9)

    p = command(
        sub,
        "tags",
        cmd_tags,
        help="words that describe an image",
        description="The caption words nearest the image's embedding (from the run's "
        "vocabulary; no image is searched, so any image of the data may be given).",
    )
    p.add_argument("image_id", type=coco_id, metavar="IMAGE_ID", nargs="?")
    p.add_argument("--photo", type=input_file, metavar="PHOTO", help="an unseen photo instead")
    add_weights_arg(p)
    _add_search_args(p, k=5, results=False, images=False)

    p = command(
        sub,
        "words",
        cmd_words,
        help="caption words similar to a word (GloVe)",
        description="Caption words nearest WORD in GloVe space; WORD itself "
        "need not occur in any caption.",
    )
    p.add_argument("word")
    _add_search_args(p, k=10, results=False, images=False)

    p = command(
        sub,
        "rank",
        cmd_rank,
        help="where one image ranks for a text query",
        description="The rank of IMAGE_ID among the run's validation images (or all) for a "
        'query, e.g. python -m capstone rank "two dogs playing in the snow" 57870. ' + QUERY_SYNTAX,
    )
    p.add_argument("text", metavar="QUERY", help="the query (as search's)")
    p.add_argument("image_id", type=coco_id, metavar="IMAGE_ID")
    add_weights_arg(p)
    _add_search_args(p, k=None, results=False)


def _engine(
    source: dict,
    *,
    as_json: bool,
    all_images: bool = False,
    searches: bool = True,
    exact: bool = False,
) -> tuple[SearchEngine, dict]:
    """The search engine over the chosen run's validation images (the course's database), or
    all with ``all_images``, and the facts of its database that ``--json`` output starts with,
    with the path that answers (``exact``: the scan of every image; else the database's
    index above its threshold, built here if needed). ``searches=False`` (tags, words: they
    search no images) says nothing about images."""
    run, ds = load_run(**source, verbose=not as_json)
    images = "all" if searches and all_images else "validation"
    engine = run.engine(ds, images)
    other_data_warnings([] if as_json else run.warnings)
    facts = {"run": run.name, "images": images, "n_images": len(engine.database)}
    if run.warnings:
        facts["warnings"] = run.warnings
    if searches:
        if not exact:  # built (or loaded) here, its message before the results; none in JSON
            engine.database.index(progress=not as_json)
        facts["answered_by"] = engine.database.answering(exact=exact)
    if searches and not as_json:
        what = "every image" if all_images else "the validation images"
        note(
            f"searching {what} of run {run.name}: {len(engine.database):,} of "
            f"{ds.data.n_images:,}"
            + ("" if all_images else " (--all-images for all)")
            + f"; answered by the {facts['answered_by']}"
        )
    return engine, facts


def _search_result(
    results: list[SearchResult],
    facts: dict,
    ignored: list[str],
    *,
    captions: int,
    show: Path | None,
) -> Result:
    """The `Result` of a search: the results (as text, or JSON after the database's
    ``facts``); with ``show``, their image grid saved there first."""
    notes = ()
    if show:
        from capstone.search.display import show_grid  # imports matplotlib: only when asked

        figure = show_grid(results[:GRID_MAX], cache_dir=cache_dir() / "images")
        figure.savefig(show, dpi=100, bbox_inches="tight")
        shown = f" (the first {GRID_MAX} of {len(results)})" if len(results) > GRID_MAX else ""
        notes = (f"grid saved to {show}{shown}",)
    data = {**facts, "ignored_words": ignored, "results": result_rows(results)}
    return Result(tuple(result_lines(results, captions, ignored)), data, notes)


def cmd_search(
    *,
    text: str | None,
    image: Path | None,
    collection: str | None,
    paths: bool,
    weights: Path | None,
    k: int,
    as_json: bool,
    all_images: bool,
    add: list[str],
    subtract: list[str],
    captions: int,
    show: Path | None,
    exact: bool = False,
    **source,
) -> Result:
    """``search``: the ``k`` images (or photos of ``collection``) best matching a query
    ``text`` or a photo ``image``; ``exact`` scans every image."""
    if (text is None) == (image is None):
        raise ValueError("give a query TEXT or --image PHOTO (one of them)")
    if image is not None and (add or subtract or collection):
        raise ValueError("--image searches the run's images by one photo: no --add, --subtract "
                         "or --collection with it")  # fmt: skip
    if paths and not collection:
        raise ValueError("--paths prints the photos of a --collection")
    if collection and (show or all_images):
        raise ValueError("--show and --all-images are for the run's images, not a --collection")
    if collection:
        return search_collection(
            collection, text, add, subtract, k=k, paths=paths, weights=weights,
            as_json=as_json, exact=exact, source=source,
        )  # fmt: skip
    if image is not None:
        descriptor = describe_photo(image, weights, progress=not as_json)
        engine, facts = _engine(source, as_json=as_json, all_images=all_images, exact=exact)
        results = engine.similar_to_descriptor(descriptor, k, exact=exact)
        return _search_result(results, facts, [], captions=captions, show=show)
    terms = query_terms(text, add, subtract)
    describe = describe_photo_terms(terms, weights, progress=not as_json)
    engine, facts = _engine(source, as_json=as_json, all_images=all_images, exact=exact)
    q = engine.query_vector(terms, describe=describe)
    results = engine.search_vector(q, k, exact=exact)
    ignored = ignored_words(engine.dataset.text, terms)
    return _search_result(results, facts, ignored, captions=captions, show=show)


def cmd_similar(
    *,
    image_id: int | None,
    photo: Path | None,
    weights: Path | None,
    space: str,
    k: int,
    as_json: bool,
    all_images: bool,
    add: list[str],
    subtract: list[str],
    captions: int,
    show: Path | None,
    exact: bool = False,
    **source,
) -> Result:
    """``similar``: the ``k`` images most like image ``image_id`` (moved by ``add`` and
    ``subtract`` terms) or like a ``photo``, in the semantic or descriptor ``space``;
    ``exact`` scans every image (the descriptor space always does)."""
    if (image_id is None) == (photo is None):
        raise ValueError("give an IMAGE_ID or --photo PHOTO (one of them)")
    if (add or subtract) and space != "semantic":
        raise ValueError("--add/--subtract work in the semantic space only")
    if (add or subtract) and photo is not None:
        raise ValueError("--add/--subtract work with an IMAGE_ID, not --photo")
    descriptor = describe_photo(photo, weights, progress=not as_json)
    terms = query_terms(None, add, subtract)
    describe = describe_photo_terms(terms, weights, progress=not as_json)
    exact = exact or space == "descriptor"
    engine, facts = _engine(source, as_json=as_json, all_images=all_images, exact=exact)
    if terms:
        q = engine.query_vector(terms, image_id=image_id, describe=describe)
        results = engine.search_vector(q, k, exclude=[image_id], exact=exact)
    elif descriptor is not None:
        results = engine.similar_to_descriptor(descriptor, k, space=space, exact=exact)
    else:
        results = engine.similar(image_id, k=k, space=space, exact=exact)
    ignored = ignored_words(engine.dataset.text, terms)
    return _search_result(results, facts, ignored, captions=captions, show=show)


def cmd_rank(
    *,
    text: str,
    image_id: int,
    weights: Path | None,
    as_json: bool,
    all_images: bool,
    **source,
) -> Result:
    """``rank``: where image ``image_id`` ranks among the searched images for query ``text``
    (the rank it would have, if it is not one of them)."""
    terms = parse_terms(text, photos=True)
    describe = describe_photo_terms(terms, weights, progress=not as_json)
    # a rank counts every image that scores higher: always the exact scan
    engine, facts = _engine(source, as_json=as_json, all_images=all_images, exact=True)
    found = engine.rank_of_vector(engine.query_vector(terms, describe=describe), image_id)
    ignored = ignored_words(engine.dataset.text, terms)
    where = "" if found.in_database else " (it is not one of them: the rank it would have)"
    lines = ignored_line(ignored)
    lines.append(
        f"image {found.image_id} ranks {found.rank:,} of {found.n_images:,} for "
        f'"{text}" (score {found.score:.3f}){where}'
    )
    return Result(tuple(lines), {**facts, "ignored_words": ignored, **asdict(found)})


def cmd_tags(
    *,
    image_id: int | None,
    photo: Path | None,
    weights: Path | None,
    k: int,
    as_json: bool,
    **source,
) -> Result:
    """``tags``: the ``k`` caption words nearest the embedding of image ``image_id`` or of a
    ``photo``."""
    if (image_id is None) == (photo is None):
        raise ValueError("give an IMAGE_ID or --photo PHOTO (one of them)")
    descriptor = describe_photo(photo, weights, progress=not as_json)
    engine, _ = _engine(source, as_json=as_json, searches=False)
    if descriptor is not None:
        found = engine.tags_of_descriptor(descriptor, k=k)
        lines = [f"photo {photo}"]
    else:
        found = engine.tags(image_id, k=k)
        data = engine.dataset.data
        row = data.image_index(image_id)
        lines = [f"image {image_id}: {data.urls[row]}"]
        lines.extend(f"  caption: {c.strip()}" for c in data.caption_texts_of_image(row))
    lines.append("tags: " + ", ".join(f"{w} ({s:.2f})" for w, s in found))
    return Result(tuple(lines), word_rows(found))


def cmd_words(*, word: str, k: int, as_json: bool, **source) -> Result:
    """``words``: the ``k`` caption words nearest ``word`` in GloVe space."""
    engine, _ = _engine(source, as_json=as_json, searches=False)
    found = engine.similar_words(word, k=k)
    idf = engine.dataset.text.idf[word.strip().lower()]
    line = f"{word} (IDF {idf:.2f}): " + ", ".join(f"{w} ({s:.2f})" for w, s in found)
    return Result((line,), word_rows(found))
