"""Benchmarks of capstone at MS-COCO scale against straightforward baselines (project issue 4).

Run ``python benchmarks/run.py`` (COCO scale, under 15 minutes on 2 cores) or
``python benchmarks/run.py --quick`` (a smoke run: 5,000 images, 20,000 words). Stages:

0. generate a COCO-scale demo dataset and a 400,000-word GloVe file (cached, reused);
1. GloVe load: capstone's cached load vs gensim's text parser;
2. embedding every caption: capstone's vectorized embedding vs a per-caption Python loop;
3. one training epoch: capstone's MyGrad step vs a hand-written NumPy step (and PyTorch);
4. query latency: text -> top 10 over every image;
5. peak memory of the whole pipeline, step by step, in a fresh process;
6. the web app: one query's server time, and the loaded server's memory in a fresh process.

``--memory`` runs only stages 0, 5 and 6b (the memory figures, a few minutes).

The table is printed and written to ``benchmarks/results/latest.md``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # so that children and imports find the sibling modules
    sys.path.insert(0, str(HERE))

from common import CHILDREN, Row, cpu_seconds, fmt_mb, fmt_seconds, log, report  # noqa: E402
from datagen import Scale, prepare  # noqa: E402
from stage_embed import stage_embed  # noqa: E402
from stage_glove import stage_glove  # noqa: E402
from stage_memory import stage_memory  # noqa: E402
from stage_query import stage_query  # noqa: E402
from stage_serve import stage_serve, stage_serve_memory  # noqa: E402
from stage_train import stage_train  # noqa: E402

#: MS-COCO train2014 (82,783 images, 414,113 captions) and GloVe 6B 200-d (400,000 words).
FULL = Scale(n_images=82_783, n_captions=414_113, n_words=400_000)
#: A smoke run: 5,000 images with COCO's captions per image, 20,000 words.
QUICK = Scale(n_images=5_000, n_captions=round(5_000 * 414_113 / 82_783), n_words=20_000)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the benchmarks (or one child task)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache", help="data cache folder")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "latest.md", help="results file"
    )
    parser.add_argument(
        "--max-batches",
        type=int,
        help="time only this many training steps and extrapolate to an epoch (default: all)",
    )
    parser.add_argument(
        "--memory", action="store_true", help="only the memory figures (stages 0, 5 and 6b)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("child_args", nargs="?", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](json.loads(args.child_args))))
        return 0

    start, (busy0, ours0) = time.perf_counter(), cpu_seconds()
    scale = QUICK if args.quick else FULL
    command = " ".join(
        ["python benchmarks/run.py"] + [f for f, on in [("--quick", args.quick),
                                                        ("--memory", args.memory)] if on]
    )  # fmt: skip
    rows: list[Row] = []
    notes: list[str] = []

    files = prepare(args.cache, scale, log=log)
    rows.append(
        Row(
            "0. generate data",
            "reused cache" if files["reused"] else fmt_seconds(files["seconds"]),
        )
    )
    notes.append(
        f"data: {files['n_images']:,} images ({files['n_without_descriptor']} without "
        f"descriptor), {files['n_captions']:,} captions ({files['n_caption_words']:,} distinct "
        f"words); GloVe file {scale.n_words:,} words x {scale.dim} "
        f"({files['glove_bytes'] / 1e6:,.0f} MB)"
    )

    model_path = Path(files["glove_cache"]) / "stage5-model.npz"
    if args.memory:
        memory = stage_memory(files, rows, notes, model_path)
        stage_serve_memory(files, rows, notes, model_path, pipeline_peak=memory["peak"])
    else:
        stage_glove(files, rows, notes)
        ctx = stage_embed(files, rows, notes)
        stage_train(ctx, rows, notes, max_batches=args.max_batches)
        stage_query(files, ctx, rows, notes)
        memory = stage_memory(files, rows, notes, model_path)
        stage_serve(files, ctx, rows, notes)
        stage_serve_memory(files, rows, notes, model_path, pipeline_peak=memory["peak"])
        for row in rows:  # the pipeline's own peak in the step that maps to a stage
            key = {"2": "embed", "3": "train", "4a": "search"}.get(row.stage.split(".")[0])
            if key is not None:
                row.memory = f"{fmt_mb(memory['peaks'][key])} (in the pipeline, stage 5)"

    wall = time.perf_counter() - start
    busy, ours = cpu_seconds()
    others = max(busy - busy0 - (ours - ours0), 0.0)
    text = report(rows, notes, command=command, wall=wall, others=others, out=args.out)
    print(text)
    log(f"written {args.out} ({fmt_seconds(wall)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
