"""Tests of `capstone.training.train`: learning, checkpoints, resuming, the epoch kept, failures.

The step itself (its loss and gradients vs NumPy, its memory) is tested in `test_steps.py`."""

from __future__ import annotations

import sys
import warnings
from dataclasses import asdict, replace

import numpy as np
import pytest

from capstone.common.archive import load_archive
from capstone.data.coco import CocoData
from capstone.data.split import split_images
from capstone.embeddings.image import ImageEmbedder
from capstone.evaluation.metrics import retrieval_metrics, triple_accuracy
from capstone.training.checkpoint import CHECKPOINT_KIND
from capstone.training.recipes import TrainConfig
from capstone.training.steps import epoch_rows
from capstone.training.train import TrainingDiverged, hold_out_selection, setup, train
from capstone.training.triples import validation_triples

# Fast settings for the toy problem (the course's 1e-3 is for 400k real triples per epoch).
FAST = TrainConfig(recipe="course", epochs=4, learning_rate=0.05, seed=0)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def toy_problem(n=300, n_classes=6, d=12, d_in=32, seed=0):
    """A learnable miniature of the course's problem.

    Image i has a latent vector (its class prototype + its own variation); its descriptor is a
    nonlinear function of that latent plus noise, and each of its 4..7 captions embeds as the
    unit latent plus noise. A linear map from descriptors to captions does well, but not
    perfectly.
    """
    rng = np.random.default_rng(seed)
    prototypes = rng.normal(size=(n_classes, d))
    latent = prototypes[rng.integers(n_classes, size=n)] + 0.5 * rng.normal(size=(n, d))
    mix = rng.normal(size=(d, d_in)) / np.sqrt(d)
    descriptors = np.tanh(latent @ mix) + 0.05 * rng.normal(size=(n, d_in))
    counts = rng.integers(4, 8, size=n)
    caption_image = np.repeat(np.arange(n), counts)
    m = len(caption_image)
    embeddings = unit(latent[caption_image] + 0.3 * rng.normal(size=(m, d)))
    data = CocoData(
        image_ids=np.arange(7, 7 + 3 * n, 3, dtype=np.int64),
        urls=[f"http://example.invalid/{i}.jpg" for i in range(n)],
        descriptors=descriptors.astype(np.float32),
        caption_ids=np.arange(10_000, 10_000 + m, dtype=np.int64),
        captions=[f"caption {i}" for i in range(m)],
        caption_image=caption_image.astype(np.int64),
        caption_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )
    return data, embeddings


@pytest.fixture(scope="module")
def toy():
    return toy_problem()


@pytest.fixture(scope="module")
def trained(toy):
    data, embeddings = toy
    return train(data, embeddings, FAST, progress=False)


def without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


# ---------------------------------------------------------------------------------------- train


def test_training_learns_the_toy_problem(toy, trained):
    data, embeddings = toy
    history = trained.history
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert all(set(r) == {"epoch", "loss", "accuracy", "val_accuracy", "seconds"} for r in history)

    val_triples = validation_triples(data, trained.val_images, FAST.seed)
    untrained = ImageEmbedder(embeddings.shape[1], d_in=data.descriptors.shape[1], seed=FAST.seed)
    before = triple_accuracy(untrained, data, embeddings, val_triples)
    after = triple_accuracy(trained.model, data, embeddings, val_triples)
    assert after == history[-1]["val_accuracy"]  # the record is the model's
    assert 0.3 < before < 0.7
    assert after > 0.8 and after > before + 0.25
    losses = [r["loss"] for r in history]
    assert losses[-1] < 0.6 * losses[0]
    assert history[-1]["accuracy"] > history[0]["accuracy"]
    assert not np.array_equal(trained.model.weight.data, untrained.weight.data)


def test_train_returns_the_configured_split(toy, trained):
    data, _ = toy
    train_images, val_images = split_images(data.n_images, val_fraction=0.2, seed=FAST.seed)
    np.testing.assert_array_equal(trained.train_images, train_images)
    np.testing.assert_array_equal(trained.val_images, val_images)
    assert trained.model.d == 12 and trained.model.d_in == 32
    assert trained.model.info["train"] == asdict(FAST)
    assert trained.model.info["history"] == trained.history


def test_training_never_looks_at_validation_images(toy, trained):
    # Poison the validation descriptors: the weights must come out bit-identical (only the
    # validation accuracy, which compares NaN similarities, is affected).
    data, embeddings = toy
    descriptors = data.descriptors.copy()
    descriptors[trained.val_images] = np.nan
    poisoned = replace(data, descriptors=descriptors)
    result = train(poisoned, embeddings, FAST, progress=False)
    np.testing.assert_array_equal(result.model.weight.data, trained.model.weight.data)
    assert [r["loss"] for r in result.history] == [r["loss"] for r in trained.history]


def test_training_is_reproducible(toy, trained):
    data, embeddings = toy
    again = train(data, embeddings, FAST, progress=False)
    np.testing.assert_array_equal(again.model.weight.data, trained.model.weight.data)
    assert without_seconds(again.history) == without_seconds(trained.history)

    other = train(data, embeddings, replace(FAST, seed=1), progress=False)
    assert not np.array_equal(other.model.weight.data, trained.model.weight.data)


def test_training_with_hard_confusors(toy, trained):
    data, embeddings = toy
    result = train(data, embeddings, replace(FAST, hard_fraction=0.5), progress=False)
    assert not np.array_equal(result.model.weight.data, trained.model.weight.data)
    assert result.history[-1]["val_accuracy"] > 0.8
    # hard triples are harder: the training loss is higher than with random confusors
    assert result.history[0]["loss"] > trained.history[0]["loss"]


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_resume_continues_exactly(toy, tmp_path, momentum):
    data, embeddings = toy
    config = TrainConfig(recipe="course", epochs=3, learning_rate=0.05, momentum=momentum, seed=2)
    straight = train(data, embeddings, config, progress=False)

    run = tmp_path / "run"
    first = train(data, embeddings, replace(config, epochs=1), run_dir=run, progress=False)
    assert len(first.history) == 1
    resumed = train(data, embeddings, config, run_dir=run, resume=True, progress=False)

    np.testing.assert_array_equal(resumed.model.weight.data, straight.model.weight.data)
    assert without_seconds(resumed.history) == without_seconds(straight.history)
    _, meta = load_archive(run / "checkpoint.npz", kind=CHECKPOINT_KIND)
    assert without_seconds(meta["history"]) == without_seconds(straight.history)


def test_resume_restores_the_momentum(toy, tmp_path):
    # With the momentum lost on resume the weights would differ: the checkpoint must hold it.
    data, embeddings = toy
    config = TrainConfig(recipe="course", epochs=1, learning_rate=0.05, seed=0)
    train(data, embeddings, config, run_dir=tmp_path, progress=False)
    arrays, meta = load_archive(tmp_path / "checkpoint.npz", kind=CHECKPOINT_KIND)
    assert np.abs(arrays["optimizer.momentum.weight"]).max() > 0
    assert meta["config"] == asdict(config)
    ImageEmbedder.load(tmp_path / "model.npz")  # the model is saved too


def test_resume_of_a_finished_run_changes_nothing(toy, tmp_path):
    data, embeddings = toy
    config = replace(FAST, epochs=2)
    done = train(data, embeddings, config, run_dir=tmp_path, progress=False)
    again = train(data, embeddings, config, run_dir=tmp_path, resume=True, progress=False)
    np.testing.assert_array_equal(again.model.weight.data, done.model.weight.data)
    assert again.history == done.history  # nothing retrained: even the timings are the same


def test_existing_checkpoint_is_not_overwritten(toy, tmp_path):
    data, embeddings = toy
    train(data, embeddings, replace(FAST, epochs=1), run_dir=tmp_path, progress=False)
    checkpoint, model_file = tmp_path / "checkpoint.npz", tmp_path / "model.npz"
    before = checkpoint.read_bytes(), model_file.read_bytes()
    with pytest.raises(FileExistsError, match=r"checkpoint\.npz exists: resume it"):
        train(data, embeddings, replace(FAST, epochs=2), run_dir=tmp_path, progress=False)
    assert (checkpoint.read_bytes(), model_file.read_bytes()) == before
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock")  # an empty lock file
    assert kept == ["checkpoint.npz", "model.npz"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"margin": 0.3}, "margin was 0.25, now 0.3"),
        ({"seed": 1}, "seed was 0, now 1"),
        ({"learning_rate": 0.01}, "learning_rate was 0.05, now 0.01"),
        ({"hard_fraction": 0.5}, "hard_fraction was 0.0, now 0.5"),
    ],
)
def test_resume_with_other_settings_is_refused(toy, tmp_path, change, message):
    data, embeddings = toy
    train(data, embeddings, replace(FAST, epochs=1), run_dir=tmp_path, progress=False)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(ValueError, match=r"cannot resume with different settings") as info:
        train(data, embeddings, replace(FAST, **change), run_dir=tmp_path, resume=True)
    text = str(info.value)
    assert message in text
    assert "epochs" not in text  # more epochs is what resuming is for
    others = {"margin", "seed", "learning_rate", "hard_fraction"} - set(change)
    assert not any(f"{name} was" in text for name in others)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_resume_needs_a_checkpoint(toy, tmp_path):
    data, embeddings = toy
    with pytest.raises(FileNotFoundError, match=r"nothing to resume: .*checkpoint\.npz"):
        train(data, embeddings, FAST, run_dir=tmp_path / "empty", resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match=r"nothing to resume: no run folder"):
        train(data, embeddings, FAST, resume=True, progress=False)


@pytest.mark.parametrize("delta", [-1, 1])
def test_caption_embeddings_must_match_the_captions(toy, delta):
    data, embeddings = toy
    n = data.n_captions
    bad = np.ones((n + delta, embeddings.shape[1]))
    with pytest.raises(ValueError) as refused:
        train(data, bad, FAST, progress=False)
    assert str(refused.value) == (
        f"`caption_embeddings` must have shape (n_captions, d) = ({n:,}, d), "
        f"got ({n + delta}, {embeddings.shape[1]})"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((None, None), "`data` must be a CocoData, got None"),
        (("dataset", None), "`caption_embeddings` must be a numpy.ndarray, got None: pass a "
         "Dataset's `.caption_embeddings` (load_dataset(embed_captions=True))"),
        (("dataset", "embeddings", {"epochs": 1}), "`config` must be a TrainConfig, got dict "
         "{'epochs': 1}: TrainConfig(**config) makes one"),
        (("data", "embeddings", FAST, 3), "`run_dir` must be a str, os.PathLike or None, got "
         "int 3"),
    ],
)  # fmt: skip
def test_arguments_of_another_type_are_named(toy, arguments, message):
    """Not an AttributeError from deep inside: the parameter, the type expected, the value."""
    data, embeddings = toy
    given = {"data": data, "embeddings": embeddings}
    arguments = [given.get(a, a) if isinstance(a, str) else a for a in arguments]
    if arguments[0] == "dataset":
        arguments[0] = data
    *positional, run_dir = arguments if len(arguments) == 4 else (*arguments, None)
    with pytest.raises(TypeError) as refused:
        train(*positional, run_dir=run_dir, progress=False)
    assert str(refused.value) == message


def test_a_dataset_for_data_says_to_pass_its_data(toy):
    from capstone.dataset import Dataset

    dataset = Dataset.__new__(Dataset)  # its type is all that matters here
    with pytest.raises(TypeError, match=r"^`data` must be a CocoData, got Dataset: pass a "
                       r"Dataset's `.data` \(load_dataset\(\) returns a Dataset\)$"):  # fmt: skip
        train(dataset, toy[1], FAST, progress=False)


def test_run_dir_holds_a_loadable_model(toy, tmp_path):
    data, embeddings = toy
    config = replace(FAST, epochs=2)
    result = train(
        data,
        embeddings,
        config,
        run_dir=tmp_path / "a" / "b",
        info={"glove": "toy"},
        progress=False,
    )
    loaded = ImageEmbedder.load(tmp_path / "a" / "b" / "model.npz", d=12)
    np.testing.assert_array_equal(loaded.weight.data, result.model.weight.data)
    assert loaded.weight.dtype == result.model.weight.dtype
    assert loaded.info["glove"] == "toy"
    assert loaded.info["train"] == asdict(config)
    assert loaded.info["history"] == result.history
    arrays, meta = load_archive(tmp_path / "a" / "b" / "checkpoint.npz", kind=CHECKPOINT_KIND)
    np.testing.assert_array_equal(arrays["weight"], result.model.weight.data)
    assert meta["history"] == result.history


def test_progress_lines_go_to_stderr(toy, capsys):
    data, embeddings = toy
    result = train(data, embeddings, replace(FAST, epochs=2), progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2  loss ")
    assert f"val accuracy {result.history[1]['val_accuracy']:.3f}" in lines[1]


def test_plot_with_agg_backend(toy, trained):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, embeddings = toy
    plt.close("all")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # not live: noggin has no "Live plotting" warning
            result = train(data, embeddings, FAST, plot=True, progress=False)
        assert plt.get_fignums()  # noggin drew its figure
        _, accuracy = plt.gcf().axes  # loss, accuracy
        train_label, validation_label = [t.get_text() for t in accuracy.get_legend().get_texts()]
        assert train_label.startswith("train: ")  # noggin's "test" is the validation triples
        assert validation_label == f"validation: {result.history[-1]['val_accuracy']:.2e}"
        # plotting does not change the training
        np.testing.assert_array_equal(result.model.weight.data, trained.model.weight.data)
    finally:
        plt.close("all")


@pytest.mark.parametrize(("warmup_epochs", "marked"), [(1, True), (2, False), (0, False)])
def test_plot_marks_where_the_warm_up_ends(toy, warmup_epochs, marked):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, embeddings = toy
    config = TrainConfig(recipe="vse++", epochs=2, warmup_epochs=warmup_epochs, batch_size=64)
    plt.close("all")
    try:
        train(data, embeddings, config, plot=True, progress=False)
        n_rows = len(epoch_rows(data, setup(data, embeddings, config).fit_images))
        for ax in plt.gcf().axes:
            lines = [line for line in ax.get_lines() if line.get_label() == "end of warm-up"]
            # after epoch 1's batches; none when the warm-up lasts the whole training (or is 0)
            assert [line.get_xdata()[0] for line in lines] == ([-(-n_rows // 64)] if marked else [])
    finally:
        plt.close("all")


@pytest.mark.parametrize("recipe", ["course", "vse0", "vse++"])
def test_training_steps_run_on_one_blas_thread_without_memory_guard(toy, monkeypatch, recipe):
    import mygrad as mg
    from threadpoolctl import threadpool_info

    import capstone.training.losses

    steps = sys.modules["capstone.training.steps"]
    seen = []
    loss = steps.margin_ranking_loss

    def spy(*args, **kwargs):
        threads = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
        seen.append((threads, mg.mem_guard_active()))
        return loss(*args, **kwargs)

    monkeypatch.setattr(steps, "margin_ranking_loss", spy)
    monkeypatch.setattr(capstone.training.losses, "margin_ranking_loss", spy)
    data, embeddings = toy
    train(data, embeddings, TrainConfig(recipe=recipe, epochs=1, seed=0), progress=False)
    assert seen and all(state == ({1}, False) for state in seen)
    assert mg.mem_guard_active()  # restored for the user's own MyGrad code


# ------------------------------------------------------------------------------------- recipes

INBATCH = TrainConfig(recipe="vse++", epochs=4, batch_size=16, learning_rate=0.01, seed=0)


@pytest.mark.parametrize("recipe", ["vse0", "vse++"])
def test_in_batch_recipes_learn_the_toy_problem(toy, recipe):
    data, embeddings = toy
    config = TrainConfig(recipe=recipe, epochs=4, batch_size=16, learning_rate=0.01)
    result = train(data, embeddings, config, progress=False)
    untrained = ImageEmbedder(12, d_in=32, seed=0)
    val = result.val_images
    r1 = retrieval_metrics(result.model, data, embeddings, val).recall_at_1
    assert r1 > 3 * retrieval_metrics(untrained, data, embeddings, val).recall_at_1
    assert result.history[-1]["val_accuracy"] > 0.9


def test_in_batch_epochs_visit_every_training_caption_once(toy, monkeypatch):
    data, embeddings = toy
    seen = []
    step = sys.modules["capstone.training.steps"].in_batch_step

    def spy(model, optimizer, captions, descriptors, image_ids, *args, **kwargs):
        seen.append(image_ids)
        return step(model, optimizer, captions, descriptors, image_ids, *args, **kwargs)

    monkeypatch.setattr(sys.modules["capstone.training.steps"], "in_batch_step", spy)
    result = train(data, embeddings, replace(INBATCH, epochs=1), progress=False)
    fit = np.setdiff1d(result.train_images, result.selection_images)
    ids = np.sort(np.concatenate(seen))
    expected = np.sort(data.image_ids[data.caption_image[np.isin(data.caption_image, fit)]])
    np.testing.assert_array_equal(ids, expected)
    assert all(len(batch) == 16 for batch in seen[:-1])


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(recipe="vse0", optimizer="sgd", learning_rate=0.05, batch_size=16),
        TrainConfig(recipe="vse0", both_directions=False, learning_rate=0.01, batch_size=16),
        replace(INBATCH, text_map=True),
        TrainConfig(
            recipe="course", optimizer="adam", learning_rate=0.01, text_map=True, select_images=10
        ),
    ],
    ids=["vse0-sgd", "vse0-adam-one-direction", "vse++-adam-text-map", "course-adam"],
)
def test_resume_is_bit_identical_for_every_recipe(toy, tmp_path, config):
    data, embeddings = toy
    config = replace(config, epochs=3)
    straight = train(data, embeddings, config, progress=False)
    train(data, embeddings, replace(config, epochs=1), run_dir=tmp_path, progress=False)
    arrays, _ = load_archive(tmp_path / "checkpoint.npz", kind=CHECKPOINT_KIND)
    slots = {k for k in arrays if k.startswith("optimizer.")}
    if config.optimizer == "adam":  # Adam's moments are saved, for every parameter
        names = ["weight", "text_map"] if config.text_map else ["weight"]
        assert slots == {f"optimizer.{m}.{n}" for m in "mv" for n in names}
    resumed = train(data, embeddings, config, run_dir=tmp_path, resume=True, progress=False)
    for a, b in zip(resumed.model.parameters, straight.model.parameters, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    assert without_seconds(resumed.history) == without_seconds(straight.history)
    assert resumed.best_epoch == straight.best_epoch


def test_best_epoch_is_kept_and_never_reads_the_validation_images(toy):
    data, embeddings = toy
    config = replace(INBATCH, epochs=6, learning_rate=0.05, select_images=30)
    result = train(data, embeddings, config, progress=False)
    scores = [h["selection_r1"] + h["selection_r5"] + h["selection_r10"] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmax(scores))
    assert result.model.info["best_epoch"] == result.best_epoch
    assert len(result.selection_images) == 24  # at most a tenth of the 240 training images
    assert not np.isin(result.selection_images, result.val_images).any()

    # Validation descriptors of NaN: the same weights and the same best epoch.
    descriptors = data.descriptors.copy()
    descriptors[result.val_images] = np.nan
    poisoned = replace(data, descriptors=descriptors)
    again = train(poisoned, embeddings, config, progress=False)
    np.testing.assert_array_equal(again.model.weight.data, result.model.weight.data)
    assert again.best_epoch == result.best_epoch


def test_best_epoch_weights_are_the_ones_saved(toy, tmp_path):
    data, embeddings = toy
    config = replace(INBATCH, epochs=5, learning_rate=0.2, select_images=30)
    result = train(data, embeddings, config, run_dir=tmp_path, progress=False)
    saved = ImageEmbedder.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(saved.weight.data, result.model.weight.data)
    # the best epoch's weights, re-made by training exactly that many epochs
    upto = train(data, embeddings, replace(config, epochs=result.best_epoch), progress=False)
    np.testing.assert_array_equal(upto.model.weight.data, result.model.weight.data)


def test_patience_stops_early(toy, tmp_path):
    data, embeddings = toy
    config = replace(INBATCH, epochs=30, learning_rate=0.05, select_images=30, patience=2)
    result = train(data, embeddings, config, run_dir=tmp_path, progress=False)
    assert len(result.history) == result.best_epoch + 2 < 30
    # resuming a stopped run trains nothing more
    again = train(data, embeddings, config, run_dir=tmp_path, resume=True, progress=False)
    assert again.history == result.history


def test_text_map_is_learned_and_saved(toy, tmp_path):
    data, embeddings = toy
    result = train(data, embeddings, replace(INBATCH, text_map=True), run_dir=tmp_path)
    T = result.model.text_map.data
    assert T.shape == (12, 12) and not np.allclose(T, np.eye(12))
    loaded = ImageEmbedder.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded.text_map.data, T)
    # evaluation goes through the map: without it the figures differ
    val = result.val_images
    with_map = retrieval_metrics(result.model, data, embeddings, val)
    result.model.text_map = None
    assert retrieval_metrics(result.model, data, embeddings, val) != with_map


def test_progress_lines_say_which_epochs_warm_up(toy, capsys):
    data, embeddings = toy
    train(data, embeddings, replace(INBATCH, epochs=3, warmup_epochs=2, select_images=30))
    lines = capsys.readouterr().err.strip().splitlines()
    assert ["(warm-up: vse0 loss)" in line for line in lines] == [True, True, False]
    assert all("selection R@1 " in line for line in lines)


# ------------------------------------------------------------------- failures are loud, not lost


def test_a_diverging_loss_stops_training_and_keeps_the_last_good_checkpoint(
    toy, tmp_path, monkeypatch
):
    data, embeddings = toy
    config = replace(INBATCH, epochs=3)
    train(data, embeddings, replace(config, epochs=1), run_dir=tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    module = sys.modules["capstone.training.steps"]  # where `epoch_steps` looks it up
    step = module.in_batch_step
    calls = []

    def diverging(*args, **kwargs):
        calls.append(1)
        loss, accuracy = step(*args, **kwargs)
        return (float("nan") if len(calls) == 3 else loss), accuracy

    monkeypatch.setattr(module, "in_batch_step", diverging)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 3: the loss is nan") as info:
        train(data, embeddings, config, run_dir=tmp_path, resume=True, progress=False)
    assert "checkpoint.npz keeps epoch 1, the last good one" in str(info.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_nan_descriptors_in_memory_stop_the_first_epoch(toy, tmp_path):
    data, embeddings = toy
    descriptors = data.descriptors.copy()
    descriptors[:] = np.nan
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 1: .*nothing was saved"):
        train(replace(data, descriptors=descriptors), embeddings, FAST, run_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]  # the lock file, empty, may remain


def test_zero_descriptors_train_without_nan(toy):
    data, embeddings = toy
    descriptors = data.descriptors.copy()
    descriptors[::7] = 0  # images the network saw nothing in
    zero = replace(data, descriptors=descriptors)
    for config in (replace(FAST, epochs=1), replace(INBATCH, epochs=1)):
        result = train(zero, embeddings, config, progress=False)
        assert np.isfinite(result.model.weight.data).all()
        assert all(np.isfinite(h["loss"]) for h in result.history)


def test_resume_with_fewer_epochs_than_done_is_refused(toy, tmp_path):
    data, embeddings = toy
    train(data, embeddings, replace(FAST, epochs=3), run_dir=tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match=r"3 epochs are done already; epochs=2 would train none"):
        train(data, embeddings, replace(FAST, epochs=2), run_dir=tmp_path, resume=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_resume_on_other_data_is_refused(toy, tmp_path):
    data, embeddings = toy
    train(data, embeddings, replace(FAST, epochs=1), run_dir=tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    other = replace(data, descriptors=data.descriptors + 1)
    with pytest.raises(ValueError, match=r"cannot resume on other data: the run trained on data"):
        train(other, embeddings, replace(FAST, epochs=2), run_dir=tmp_path, resume=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize(("n_train", "expected"), [(9, 0), (19, 0), (20, 2), (300, 30)])
def test_the_selection_slice_is_a_tenth_and_never_a_single_image(n_train, expected):
    fit, selection = hold_out_selection(np.arange(n_train), 1000, seed=0)
    assert len(selection) == expected
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, selection])), np.arange(n_train))


# -- what a run folder holds is never replaced by a training that does not continue it ---------


def test_a_model_no_checkpoint_continues_is_not_replaced(toy, tmp_path):
    """A run folder with model.npz but no checkpoint.npz (copied in, or trained elsewhere)."""
    data, embeddings = toy
    elsewhere = train(data, embeddings, replace(FAST, epochs=1), run_dir=tmp_path / "a",
                      progress=False)  # fmt: skip
    folder = tmp_path / "copied"
    folder.mkdir()
    model = folder / "model.npz"
    model.write_bytes(elsewhere.path.read_bytes())
    before = model.read_bytes()
    with pytest.raises(FileExistsError) as refused:
        train(data, embeddings, replace(FAST, epochs=1), run_dir=folder, progress=False)
    assert str(refused.value) == (
        f"run copied: {model} exists and no checkpoint continues it (copied in, or trained "
        "elsewhere): training would replace it. Train into another run (--run NAME) to keep it"
    )
    assert model.read_bytes() == before
    assert not (folder / "checkpoint.npz").exists()


# -- a step's size is checked against the data and the memory before it is allocated ----------


def test_a_step_larger_than_the_memory_is_refused_before_anything_is_made(
    toy, tmp_path, monkeypatch
):
    import capstone.training.steps as steps_module

    data, embeddings = toy
    monkeypatch.setattr(steps_module, "available_memory", lambda: 20_000_000)  # 20 MB
    config = TrainConfig(recipe="vse0", epochs=1, batch_size=100_000_000)
    note = r"`batch_size` \(--batch-size\) 100,000,000 is more than the \d[\d,]* training captions"
    with pytest.warns(UserWarning, match=note + ": each epoch is one step of all"):
        with pytest.raises(ValueError) as refused:
            train(data, embeddings, config, run_dir=tmp_path / "big", progress=False)
    message = str(refused.value)
    assert message.startswith("`batch_size` (--batch-size) 100,000,000: a step of ")
    assert "GB of memory (vse0), and 0.0 GB is available: choose --batch-size 256 or less" in (
        message
    )
    assert not (tmp_path / "big").exists()  # refused before the run folder was made
    # the batch it proposes does fit
    from capstone.training.steps import step_memory

    assert step_memory(config, 256, embeddings.shape[1], data.descriptors.shape[1]) <= 20_000_000
    assert step_memory(config, 512, embeddings.shape[1], data.descriptors.shape[1]) > 20_000_000


def test_a_batch_larger_than_the_epoch_takes_it_whole_with_a_note(toy):
    data, embeddings = toy
    config = replace(FAST, epochs=1, batch_size=10**8)
    with pytest.warns(UserWarning, match=r"100,000,000 is more than the [\d,]+ training triples"):
        result = train(data, embeddings, config, progress=False)
    assert len(result.history) == 1


def test_a_folder_another_training_holds_says_so_before_its_files(tmp_path):
    """Its checkpoint is that training's, in the making: "resume it" would be the wrong advice."""
    from capstone.common.locks import FolderLocked, exclusive
    from capstone.training.checkpoint import check_run_folder

    with exclusive(tmp_path):
        (tmp_path / "checkpoint.npz").write_bytes(b"epoch 1")
        with pytest.raises(FolderLocked, match=f"run folder {tmp_path} is in use by a training"):
            check_run_folder(tmp_path, resume=False)
    with pytest.raises(FileExistsError, match=r"checkpoint\.npz exists: resume it"):
        check_run_folder(tmp_path, resume=False)
