"""Stage 6: the web app at COCO scale: one query's server time, and the loaded server's memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from common import Row, child, fmt_mb, log, run_child
from stage_memory import METHOD, Steps
from stage_query import fmt_latency, latencies


def _service(files: dict, data, glove, text, caption_embeddings, model_path: Path):
    """A `SearchService` over the benchmark data and the saved stage-3 model."""
    from capstone.data.paths import DataFiles
    from capstone.dataset import Dataset
    from capstone.frontends.web.service import SearchService
    from capstone.runs import Run

    files = DataFiles(Path(files["captions"]), Path(files["features"]), Path(files["glove"]),
                      "argument")  # fmt: skip
    dataset = Dataset(files, data, glove, text, caption_embeddings)
    return SearchService.load(Run.load(model_path), dataset)


def _save_model(ctx: dict, path: Path) -> None:
    """Stage 3's model, saved with the course's split (seed 0) as its validation images."""
    from capstone.data.split import split_images

    data, model = ctx["data"], ctx["model"]
    _, val = split_images(data.n_images, val_fraction=0.2, seed=0)
    model.info["val_image_ids"] = data.image_ids[val].tolist()
    model.save(path, overwrite=True)


@child
def server(kw: dict) -> dict:
    """Load what ``python -m capstone serve`` loads and answer every kind of request once,
    recording each step's own peak RSS (`stage_memory.Steps`)."""
    steps = Steps()
    from capstone.common.memory import release_freed_memory
    from capstone.data.coco import CocoData
    from capstone.data.glove import load_word2vec_text
    from capstone.embeddings.text import TextEmbedder
    from capstone.frontends.web.app import create_app
    from capstone.text.idf import IDF

    steps.done("start")
    data = CocoData.load(Path(kw["captions"]), Path(kw["features"]))
    glove = load_word2vec_text(Path(kw["glove"]), cache_dir=kw["cache_dir"])
    text = TextEmbedder(IDF.fit(data.captions), glove)  # serving embeds no caption
    release_freed_memory()  # as `serve` does, after loading and after building
    steps.done("data")
    service = _service(kw, data, glove, text, None, Path(kw["model"]))
    release_freed_memory()
    steps.done("engines")
    client = create_app(service).test_client()
    image = int(data.image_ids[0])
    routes = [
        "/?q=a+dog+on+a+beach", "/?q=2:dog+%2B+beach+-+sand&images=all", f"/image/{image}?q=dog",
        f"/image/{image}?space=descriptor", "/api/search?q=a+red+bus&format=csv", "/about",
        f"/api/rank?q=a+cat&image_id={image}&images=all",
    ]  # fmt: skip
    for route in routes:
        status = client.get(route).status_code
        if status != 200:
            raise AssertionError(f"{route}: HTTP {status}")
    steps.done("requests")
    return steps.as_dict()


#: The server's steps, as (key, label).
SERVER = (
    ("start", "start + imports"),
    ("data", "data, GloVe, IDF"),
    ("engines", "model + both databases"),
    ("requests", "one request of each kind"),
)


def stage_serve(files: dict, ctx: dict, rows: list[Row], notes: list[str],
                n_queries: int = 1_000) -> None:  # fmt: skip
    """Stage 6a: the web app's query time against `SearchEngine.search` in the same process."""
    from capstone.frontends.web.app import create_app
    from capstone.search.engine import SearchEngine

    model_path = Path(files["glove_cache"]) / "stage3-model.npz"
    _save_model(ctx, model_path)
    data = ctx["data"]
    service = _service(files, data, ctx["glove"], ctx["text"], ctx["caption_embeddings"],
                       model_path)  # fmt: skip
    engine: SearchEngine = service.engines["all"]
    client = create_app(service).test_client()
    rng = np.random.default_rng(6)
    texts = [data.captions[i] for i in rng.choice(data.n_captions, n_queries, replace=False)]
    texts = [t[:200] for t in texts]
    log(f"stage 6: {n_queries:,} queries over all {len(engine.database):,} images, three ways")
    times = latencies(
        {
            "service": (lambda t: service.search(t, 10, None, "all"), texts),
            "http": (lambda t: client.get("/api/search", query_string={"q": t, "k": 10,
                                                                        "images": "all"}), texts),
            "engine": (lambda t: engine.search(t, 10), texts),
            "validation": (lambda t: service.search(t, 10, None, "validation"), texts),
        }
    )  # fmt: skip
    median = float(np.median(times["service"]))
    rows.append(
        Row(
            "6a. web query -> top 10 (server time)",
            fmt_latency(times["service"]),
            f"SearchEngine.search: {fmt_latency(times['engine'])}",
            f"{np.median(times['engine']) / median:.2f}x",
            target="median < 1.5 ms",
            met=median < 1.5e-3,
        )
    )
    n_val = len(service.engines["validation"].database)
    rows.append(
        Row(
            f"6a'. the same over the {n_val:,} validation images (the page's default)",
            fmt_latency(times["validation"]),
            target="median < 1.5 ms",
            met=float(np.median(times["validation"])) < 1.5e-3,
        )
    )
    notes.append(
        f"stage 6: a query's server time is `SearchService.search` (parse the +/- terms, "
        f"embed, top 10 of all {len(engine.database):,} images, ignored words, results with "
        f"captions); through Flask's test client (`/api/search`, JSON) it takes "
        f"{fmt_latency(times['http'])}."
    )


def stage_serve_memory(files: dict, rows: list[Row], notes: list[str], model_path: Path,
                       pipeline_peak: int) -> None:  # fmt: skip
    """Stage 6b: the server's memory in a fresh process (the model of stage 5, saved at
    ``model_path``), against the whole pipeline's peak (stage 5, KiB)."""
    log("stage 6b: the server's memory, in a subprocess")
    kw = {k: str(files[k]) for k in ("captions", "features", "glove")}
    result, _ = run_child("server", **kw, cache_dir=str(files["glove_cache"]),
                          model=str(model_path))  # fmt: skip
    peaks, after = result["peaks"], result["after"]
    resident = after["requests"]
    rows.append(
        Row(
            "6b. web server, resident once loaded and used",
            f"{fmt_mb(resident)} ({resident * 1024 / 1e6:,.0f} MB)",
            f"whole pipeline's peak (5.): {fmt_mb(pipeline_peak)}",
            f"{resident / pipeline_peak:.2f}x",
            target="< 700 MB",
            met=resident * 1024 < 700e6,
            memory=f"peak {fmt_mb(max(peaks.values()))}; "
            + ", ".join(
                f"{label} {fmt_mb(peaks[key])} (then {fmt_mb(after[key])})" for key, label in SERVER
            ),
        )
    )
    notes.append(
        "stage 6b: a fresh process loads what `python -m capstone serve` loads (data, cached "
        "GloVe, IDF without caption embeddings, stage 5's model, the validation and "
        "all-images databases) and answers a search, an image page, descriptor-space "
        "neighbours, a CSV export, the about page and a rank; 'resident' is its RSS (`VmRSS`) "
        f"then. Method: {METHOD}."
    )
