"""Stage 3: one training epoch of the course recipe, capstone's MyGrad step against a NumPy
step with hand-written gradients (and PyTorch, when installed)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from baselines import NumpyTrainer, TorchTrainer
from common import Row, fmt_seconds, log, run_interleaved


def stage_train(
    ctx: dict,
    rows: list[Row],
    notes: list[str],
    *,
    max_batches: int | None,
    verify: int = 20,
    chunk: int = 100,
) -> None:
    """Stage 3: one epoch of capstone's MyGrad training step vs NumPy (and PyTorch) steps.

    All step functions see the same triples (those `capstone.training.train.train` draws for
    epoch 1) in the same order, gathered the same way, taking turns every ``chunk`` steps.
    capstone's step runs with one BLAS thread, as `capstone.training.train.train` runs it; the
    NumPy floor is the faster of one BLAS thread and the default, chunk by chunk. Adds
    ``model`` (trained by capstone) to ``ctx``.
    """
    from mynn.optimizers.sgd import SGD

    from capstone.data.split import split_images
    from capstone.embeddings.image import ImageEmbedder
    from capstone.training.recipes import TrainConfig
    from capstone.training.steps import train_step
    from capstone.training.triples import make_triples

    config = TrainConfig(recipe="course")
    data, captions = ctx["data"], ctx["caption_embeddings"]
    train_images, _ = split_images(
        data.n_images, val_fraction=config.val_fraction, seed=config.seed
    )
    rng = np.random.default_rng([config.seed, 1])  # as `train` does for epoch 1
    triples = make_triples(data, train_images, rng)
    triples = triples.take(rng.permutation(len(triples)))
    bs = config.batch_size
    n_epoch = -(-len(triples) // bs)
    n_timed = min(n_epoch, max_batches or n_epoch)

    def batches(lo: int, hi: int) -> Iterator[tuple]:
        for i in range(lo, hi):
            b = triples.take(slice(i * bs, (i + 1) * bs))
            yield captions[b.caption], data.descriptors[b.true_image], data.descriptors[b.confusor]

    def trainers() -> tuple[ImageEmbedder, dict, dict]:
        """A fresh capstone model and fresh baselines, all with the same initial weights."""
        model = ImageEmbedder(captions.shape[1], d_in=data.descriptors.shape[1], seed=config.seed)
        opt = SGD(model.parameters, learning_rate=config.learning_rate, momentum=config.momentum)
        hyper = (model.weight.data, config.learning_rate, config.momentum, config.margin)
        others = {"NumPy": (NumpyTrainer(*hyper), 1), "NumPy*": (NumpyTrainer(*hyper), None)}
        try:
            others["PyTorch"] = (TorchTrainer(*hyper), None)
        except ImportError:
            pass
        ours = (lambda c, t, f: train_step(model, opt, c, t, f, config.margin), 1)
        steps = {"capstone": ours, **{k: (v.step, n) for k, (v, n) in others.items()}}
        return model, steps, {k: v for k, (v, _) in others.items()}

    # The floor is honest only if it computes the same thing: compare weights after a few steps.
    model, steps, others = trainers()
    run_interleaved(steps, batches, verify, verify)
    for name in ("NumPy", "NumPy*"):
        if not np.allclose(model.weight.data, others[name].weight, rtol=1e-4, atol=1e-6):
            diff = float(np.abs(model.weight.data - others[name].weight).max())
            raise AssertionError(f"{name} step differs from MyGrad's after {verify} steps: {diff}")

    log(f"stage 3: {n_timed:,} training steps each: {', '.join(steps)} (taking turns)")
    model, steps, others = trainers()
    results = run_interleaved(steps, batches, n_timed, chunk)
    ctx["model"] = model
    drift = float(np.abs(model.weight.data - others["NumPy"].weight).max())
    ours = results["capstone"][0]
    floor = np.minimum(results["NumPy"][0], results["NumPy*"][0])
    epoch = {name: times.sum() for name, (times, _) in results.items()}
    epoch["floor"] = floor.sum()
    epoch = {name: t * n_epoch / n_timed for name, t in epoch.items()}

    what = "epoch" if n_timed == n_epoch else f"epoch (extrapolated from {n_timed:,} steps)"
    ratio = float(np.median(ours / floor))
    rows.append(
        Row(
            f"3. training {what}",
            fmt_seconds(epoch["capstone"]),
            f"NumPy {fmt_seconds(epoch['floor'])}",
            f"{ratio:.2f}x the floor",
            "<= 1.3x the NumPy floor",
            ratio <= 1.3,
        )
    )
    vs_torch = ["PyTorch not installed", "-"]
    if "PyTorch" in results:
        vs_torch = [
            f"PyTorch {fmt_seconds(epoch['PyTorch'])}",
            f"{float(np.median(ours / results['PyTorch'][0])):.2f}x PyTorch's time",
        ]
    rows.append(Row("3b. training epoch vs PyTorch", fmt_seconds(epoch["capstone"]), *vs_torch))
    per_step = {name: t / n_epoch * 1e6 for name, t in epoch.items()}
    mean_losses = ", ".join(f"{loss:.4f} ({name})" for name, (_, loss) in results.items())
    notes.append(
        f"stage 3: {len(triples):,} training triples = {n_epoch:,} steps of {bs} (course "
        f"defaults: SGD lr {config.learning_rate}, momentum {config.momentum}, margin "
        f"{config.margin}, d={captions.shape[1]}); per step "
        + ", ".join(f"{v:.0f} µs ({k})" for k, v in per_step.items())
        + ", batch gathering included. capstone runs with 1 BLAS thread as `train` does; "
        "NumPy with 1 thread, NumPy* with the default; the floor is the faster of the two in "
        f"each turn. The implementations take turns every {chunk} steps; the ratio is the "
        f"median over those {len(ours)} turns of capstone's time over the floor's (the epoch "
        f"times are sums). The NumPy step matches MyGrad's weights after {verify} steps "
        f"(allclose, rtol 1e-4); after all the timed steps the largest weight difference is "
        f"{drift:.1g}; mean loss {mean_losses}."
    )
