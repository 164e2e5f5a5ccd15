"""Training recipes compared: retrieval quality, time to quality, and the default's epoch speed.

Run ``python benchmarks/recipes.py`` (the embedded demo, 20,000 images) or
``python benchmarks/recipes.py --images 82783`` (a generated dataset of COCO's size, real
GloVe 6B 50-d vectors). Three parts, all on the same data, split and seed:

1. **Recipes.** Each recipe trains for ``--epochs`` epochs with
   `capstone.training.train.train`, as a user runs it; the table gives caption -> image and
   image -> caption retrieval on 1,000-image pools of the validation images
   (`capstone.evaluation.metrics.retrieval_metrics`) and the training seconds.
2. **Time to quality.** The course recipe's validation R@1 after ``--epochs`` epochs is the
   target; the default recipe trains step by step (`capstone.training.steps.epoch_steps`, as `train`
   runs it) and its validation R@1 is measured every ``--check-every`` steps, outside the
   clock. Reported: the training seconds of each to reach the target (target: the default in
   at most 1/5 of the course's time).
3. **Epoch speed.** One epoch of the default recipe's step (`capstone.training.steps.in_batch_step`:
   MyGrad + MyNN's Adam) against `baselines.NumpyInBatchTrainer`, the same step with
   hand-written gradients, taking turns every 100 steps on the same batches (target: within
   1.3x). Both run on one BLAS thread (as `train` does), after checking that 20 steps give
   the same weights.

The tables are printed and written to ``benchmarks/results/recipes-<images>.md``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from baselines import NumpyInBatchTrainer  # noqa: E402
from common import blas_threads, machine, run_interleaved  # noqa: E402

from capstone.data import minicoco  # noqa: E402
from capstone.dataset import DEMO_IMAGES, load_dataset  # noqa: E402
from capstone.evaluation.metrics import retrieval_metrics  # noqa: E402
from capstone.training.recipes import DEFAULT_RECIPE, TrainConfig  # noqa: E402
from capstone.training.steps import epoch_steps, in_batch_step  # noqa: E402
from capstone.training.train import setup, train  # noqa: E402

#: The rows of part 1: name -> settings (on top of the epochs and seed).
RECIPE_ROWS = {
    "course": dict(recipe="course"),
    "course + text map": dict(recipe="course", text_map=True),
    "vse0 (no text map)": dict(recipe="vse0", text_map=False),
    "vse0": dict(recipe="vse0"),
    "vse++ (no text map)": dict(recipe="vse++", text_map=False),
    "vse++ (one direction)": dict(recipe="vse++", both_directions=False),
    f"{DEFAULT_RECIPE} (default)": dict(recipe=DEFAULT_RECIPE),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load(images: int, cache: Path):
    """The embedded demo, or a generated dataset of ``images`` images with COCO's captions."""
    if images == DEMO_IMAGES:
        return load_dataset(demo=True)
    folder = cache / f"minicoco-{images}"
    if not (folder / "resnet18_features.pkl").is_file():
        log(f"generating {images:,} images into {folder}")
        minicoco.generate(folder, images, n_captions=round(images * 414_113 / 82_783))
    return load_dataset(folder)


def recipes_table(ds, epochs: int, seed: int, names: list[str]) -> list[str]:
    """Part 1: one row per recipe."""
    head = (
        "| recipe | R@1 | R@5 | R@10 | med. rank | MRR | i2t R@1 | i2t R@5 | i2t R@10 "
        "| i2t med. rank | best epoch | train s |"
    )
    lines = [head, "|" + " --- |" * 12]
    for name in names:
        config = TrainConfig(epochs=epochs, seed=seed, **RECIPE_ROWS[name])
        log(f"part 1: {name}, {epochs} epochs")
        start = time.perf_counter()
        result = train(ds.data, ds.caption_embeddings, config, progress=False)
        seconds = time.perf_counter() - start
        m = retrieval_metrics(
            result.model, ds.data, ds.caption_embeddings, result.val_images, seed=seed
        )
        cells = [
            f"{m.recall_at_1:.1%}",
            f"{m.recall_at_5:.1%}",
            f"{m.recall_at_10:.1%}",
            f"{m.median_rank:g}",
            f"{m.mrr:.3f}",
            f"{m.i2t_recall_at_1:.1%}",
            f"{m.i2t_recall_at_5:.1%}",
            f"{m.i2t_recall_at_10:.1%}",
            f"{m.i2t_median_rank:g}",
            str(result.best_epoch),
            f"{seconds:.1f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        log(lines[-1])
    return lines


class StepRunner:
    """Trains a recipe step by step as `train` does, the clock running only inside steps."""

    def __init__(self, ds, config: TrainConfig):
        self.ds, self.config = ds, config
        init = setup(ds.data, ds.caption_embeddings, config)
        self.model, self.optimizer = init.model, init.optimizer
        self.val, self.fit = init.val_images, init.fit_images
        self.seconds = 0.0

    def val_r1(self) -> float:
        ds = self.ds
        metrics = retrieval_metrics(
            self.model, ds.data, ds.caption_embeddings, self.val, seed=self.config.seed
        )
        return metrics.recall_at_1

    def run(self, epochs: int, check_every: int | None = None, target: float = np.inf):
        """Train; every ``check_every`` steps stop if validation R@1 >= target.

        Returns (seconds when stopped, steps, the R@1 reached or None when never checked).
        """
        with blas_threads(1):  # as `train`: once, not per step (entering costs ~ms)
            return self._run(epochs, check_every, target)

    def _run(self, epochs: int, check_every: int | None, target: float):
        steps, bs = 0, self.config.batch_size
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            n, step = epoch_steps(
                self.model,
                self.optimizer,
                self.config,
                epoch,
                self.ds.data,
                self.ds.caption_embeddings,
                self.fit,
            )
            self.seconds += time.perf_counter() - start
            for lo in range(0, n, bs):
                start = time.perf_counter()
                step(slice(lo, lo + bs))
                self.seconds += time.perf_counter() - start
                steps += 1
                if check_every and steps % check_every == 0:
                    r1 = self.val_r1()
                    if r1 >= target:
                        return self.seconds, steps, r1
        return self.seconds, steps, None


def time_to_quality(ds, epochs: int, seed: int, check_every: int) -> list[str]:
    """Part 2."""
    log(f"part 2: the course recipe, {epochs} epochs, step by step")
    course = StepRunner(ds, TrainConfig(recipe="course", epochs=epochs, seed=seed))
    course_seconds, course_steps, _ = course.run(epochs)
    target = course.val_r1()
    log(f"part 2: course R@1 {target:.3f} in {course_seconds:.1f} s; now {DEFAULT_RECIPE}")
    default = StepRunner(ds, TrainConfig(epochs=epochs, seed=seed))
    seconds, steps, reached = default.run(epochs, check_every, target)
    if reached is None:
        found = f"not reached in {epochs} epochs ({seconds:.1f} s)"
        ratio = "-"
    else:
        found = f"{seconds:.1f} s ({steps:,} steps, R@1 {reached:.1%})"
        ratio = f"{seconds / course_seconds:.3f} ({course_seconds / seconds:.0f}x faster)"
    return [
        "| | course recipe | default recipe | time ratio | target | met? |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| training seconds to validation R@1 {target:.1%} (the course's after {epochs} "
        f"epochs) | {course_seconds:.1f} s ({course_steps:,} steps) | {found} | {ratio} "
        f"| <= 0.2 | {'yes' if reached is not None and seconds <= course_seconds / 5 else 'no'} |",
        "",
        f"The default recipe's validation R@1 is measured every {check_every} steps, outside "
        "the clock; the clocks hold the training steps and each epoch's shuffling only.",
    ]


def epoch_speed(ds, seed: int, verify: int = 20, chunk: int = 100) -> list[str]:
    """Part 3: an epoch of the default's step (max violation, after the warm-up) vs NumPy."""
    config = TrainConfig(seed=seed)
    epoch = config.warmup_epochs + 1  # the loss of every epoch after the warm-up
    data, captions = ds.data, ds.caption_embeddings
    fit = setup(data, captions, config).fit_images
    order = np.random.default_rng([seed, epoch]).permutation(
        np.flatnonzero(np.isin(data.caption_image, fit))
    )
    bs = config.batch_size
    n = -(-len(order) // bs)

    def batches(lo: int, hi: int):
        for i in range(lo, hi):
            rows = order[i * bs : (i + 1) * bs]
            images = data.caption_image[rows]
            yield captions[rows], data.descriptors[images], data.image_ids[images]

    def steps():
        init = setup(data, captions, config)  # the default's model (text map) and Adam
        model, opt = init.model, init.optimizer
        numpy = NumpyInBatchTrainer(
            model.weight.data, model.text_map.data, config.learning_rate, config.margin, "max"
        )

        def ours(c, x, ids):
            return in_batch_step(
                model, opt, c, x, ids, config.margin, violation="max", both_directions=True
            )

        return model, numpy, {"capstone": (ours, 1), "NumPy": (numpy.step, 1)}

    model, numpy, fns = steps()
    run_interleaved(fns, batches, verify, verify)
    for ours, theirs in zip(model.parameters, numpy.params, strict=True):
        if not np.allclose(ours.data, theirs, rtol=1e-4, atol=1e-6):
            raise AssertionError(f"the NumPy step differs from MyGrad's after {verify} steps")
    log(f"part 3: {n:,} steps each, taking turns every {chunk}")
    _, _, fns = steps()
    results = run_interleaved(fns, batches, n, chunk)
    ours, floor = results["capstone"][0], results["NumPy"][0]
    ratio = float(np.median(ours / floor))
    return [
        "| | capstone (MyGrad + MyNN Adam) | NumPy, hand-written gradients | ratio | target "
        "| met? |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| one epoch of {DEFAULT_RECIPE} ({n:,} steps of {bs}) | {ours.sum():.2f} s "
        f"({ours.sum() / n * 1e6:.0f} µs a step) | {floor.sum():.2f} s "
        f"({floor.sum() / n * 1e6:.0f} µs a step) | {ratio:.2f}x | <= 1.3x "
        f"| {'yes' if ratio <= 1.3 else 'no'} |",
        "",
        f"Max violation, both directions, text map, Adam, d={captions.shape[1]}; batch "
        f"gathering included; both on one BLAS thread; the ratio is the median over "
        f"{len(ours)} turns of {chunk} steps. The two agree after {verify} steps (allclose, "
        "rtol 1e-4).",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=DEMO_IMAGES, help="(the demo's 20,000)")
    parser.add_argument("--epochs", type=int, default=10, help="(10)")
    parser.add_argument("--seed", type=int, default=0, help="(0)")
    parser.add_argument(
        "--recipes",
        default=",".join(RECIPE_ROWS),
        help="part 1's rows, comma-separated (all): " + ", ".join(RECIPE_ROWS),
    )
    parser.add_argument(
        "--parts", default="1,2,3", help="which parts to run, comma-separated (1,2,3)"
    )
    parser.add_argument("--check-every", type=int, default=50, help="part 2 (50 steps)")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--out", type=Path, help="(benchmarks/results/recipes-IMAGES.md)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPE_ROWS]
    if unknown:
        parser.error(f"--recipes: unknown {unknown}; choose from {list(RECIPE_ROWS)}")
    parts = set(args.parts.split(","))

    command = shlex.join(sys.argv[1:] if argv is None else argv)
    ds = load(args.images, args.cache)
    title = (
        f"{ds.data.n_images:,} images, {ds.data.n_captions:,} captions "
        f"({'the embedded demo' if ds.files.is_demo else 'generated, ' + str(ds.files.source)}), "
        f"GloVe d={ds.glove.dim}, seed {args.seed}"
    )
    out = [
        f"# Training recipes: {title}",
        "",
        f"`python benchmarks/recipes.py {command}` on {datetime.now():%Y-%m-%d %H:%M}, {machine()}",
        "",
    ]
    if "1" in parts:
        out += [
            f"## Recipes, {args.epochs} epochs",
            "",
            *recipes_table(ds, args.epochs, args.seed, names),
            "",
        ]
    if "2" in parts:
        out += [
            "## Time to quality",
            "",
            *time_to_quality(ds, args.epochs, args.seed, args.check_every),
            "",
        ]
    if "3" in parts:
        out += ["## Epoch speed of the default recipe", "", *epoch_speed(ds, args.seed), ""]
    text = "\n".join(out)
    print(text)
    path = args.out or HERE / "results" / f"recipes-{args.images}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    log(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
