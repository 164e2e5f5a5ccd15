"""The course's tasks: name, points, the stub students get, and the check of each.

Every check compares the student's function with `capstone.course_math` (or, for the tasks
whose signature differs from it, with a plain reference here) on inputs drawn by Hypothesis
(the strategies here), with `capstone.course.compare`: the same submission always gets the
same feedback, the smallest input that fails with the expected and the actual result.

While one task is checked, the other tasks' names in the student's module are bound to the
references (`isolated`): a bug in ``tokenize`` costs the points of ``tokenize``, not also
those of ``idf`` and ``caption_embedding``, which call it. The end-to-end check
(`capstone.course.student.end_to_end`) is the one place their functions run together.
"""

from __future__ import annotations

import contextlib
import string
from collections.abc import Callable
from dataclasses import dataclass

import mygrad as mg
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mygrad.nnet.losses import margin_ranking_loss

from capstone import course_math

from .compare import TaskFailed, close, compare, floats_close, same_floats

__all__ = ["E2E", "TASKS", "Task", "isolated", "task"]

#: Name and points of the end-to-end check (graded after the tasks; no stub of its own).
E2E = "end_to_end"


@dataclass(frozen=True)
class Task:
    """One course task.

    Attributes
    ----------
    name : str
        The function the student writes in ``my_capstone.py``.
    points : int
    signature : str
        Its parameters and return annotation, as the stub shows them.
    doc : str
        The task text (shapes, formula) the stub carries as its docstring.
    check : callable
        ``check(function)``: raises `TaskFailed` with feedback, returns None when it passes.
    reference : callable
        What stands in for the student's function while another task is checked.
    """

    name: str
    points: int
    signature: str
    doc: str
    check: Callable
    reference: Callable


# -- references for the tasks whose signature differs from course_math's ----------------------


def _coco_lookups(annotations):
    captions_of, image_of = {}, {}
    for a in annotations:
        captions_of.setdefault(a["image_id"], []).append(a["id"])
        image_of[a["id"]] = a["image_id"]
    return captions_of, image_of


def _image_embedding(descriptors, weight):
    y = mg.matmul(descriptors, weight)
    return y / mg.sqrt(mg.sum(y**2, axis=1, keepdims=True))


def _make_triples(image_of, image_ids, rng):
    pool = list(image_ids)
    chosen = set(pool)
    triples = []
    for caption, image in image_of.items():
        if image in chosen:
            confusor = image
            while confusor == image:
                confusor = pool[rng.integers(len(pool))]
            triples.append((caption, image, confusor))
    return triples


def _train_step(weight, captions, true_descriptors, confusor_descriptors, margin, learning_rate):
    sim_true = mg.einsum("nd,nd->n", captions, _image_embedding(true_descriptors, weight))
    sim_confusor = mg.einsum("nd,nd->n", captions, _image_embedding(confusor_descriptors, weight))
    loss = margin_ranking_loss(sim_true, sim_confusor, 1, margin)
    loss.backward()
    weight.data -= learning_rate * weight.grad
    weight.null_grad()
    return float(loss.item())


# -- the strategies ---------------------------------------------------------------------------

_WORDS = ["a", "dog", "Dog", "cat", "the", "sits", "on", "mat", "red", "bus"]
_text = st.lists(
    st.sampled_from([*_WORDS, ",", "!", "hot-dog", "man's", "  "]), max_size=6
).map(" ".join)
_unit = hnp.arrays(np.float64, st.integers(1, 4), elements=st.integers(-5, 5)).filter(
    lambda v: v.any()
).map(lambda v: v / np.linalg.norm(v))
_scores = st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=8)


def _pair_of_units(v):
    return st.tuples(st.just(v), hnp.arrays(np.float64, len(v), elements=st.integers(-5, 5))
                     .filter(lambda w: w.any()).map(lambda w: w / np.linalg.norm(w)))  # fmt: skip


@st.composite
def _embedding_inputs(draw):
    words = draw(st.lists(st.sampled_from(_WORDS).map(str.lower), unique=True, min_size=1))
    d = draw(st.integers(1, 3))
    glove = {w: draw(hnp.arrays(np.float64, d, elements=st.integers(-3, 3))) for w in words}
    idf = {w: draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])) for w in words}
    return draw(_text), idf, glove


@st.composite
def _annotations(draw):
    ids = draw(st.lists(st.integers(0, 50), unique=True, max_size=8))
    images = [draw(st.sampled_from([7, 8, 9])) for _ in ids]
    pairs = zip(ids, images, strict=True)
    return ([{"id": i, "image_id": m, "caption": "a dog"} for i, m in pairs],)


@st.composite
def _embedding_batch(draw):
    n, d_in, d = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    x = draw(hnp.arrays(np.float64, (n, d_in), elements=st.integers(-3, 3)))
    w = draw(hnp.arrays(np.float64, (d_in, d), elements=st.integers(-3, 3)))
    if not (np.linalg.norm(x @ w, axis=1) > 0).all():  # a zero row has no direction
        x, w = np.ones((n, d_in)), np.eye(d_in, d) + 1
    return x, w


@st.composite
def _step_inputs(draw):
    b, d_in, d = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ints = st.integers(1, 4)
    # positive weights and descriptors: no x W is zero (a zero row has no direction)
    w = draw(hnp.arrays(np.float64, (d_in, d), elements=ints))
    captions = draw(hnp.arrays(np.float64, (b, d), elements=st.integers(-3, 3)))
    captions[~captions.any(axis=1), 0] = 1
    captions /= np.linalg.norm(captions, axis=1, keepdims=True)
    true = draw(hnp.arrays(np.float64, (b, d_in), elements=ints))
    confusor = draw(hnp.arrays(np.float64, (b, d_in), elements=ints))
    margin = draw(st.sampled_from([0.1, 0.25, 1.0]))
    return w, captions, true, confusor, margin, 0.5


# -- the checks -------------------------------------------------------------------------------


def _check_tokenize(f):
    text = st.text(string.ascii_letters + string.punctuation + " \t\n0123", max_size=30)
    compare("tokenize", f, course_math.tokenize, st.tuples(text), names=["text"])


def _check_idf(f):
    compare("idf", f, course_math.idf, st.tuples(st.lists(_text, min_size=1, max_size=5)),
            same_floats, names=["captions"])  # fmt: skip


def _check_caption_embedding(f):
    compare("caption_embedding", f, course_math.caption_embedding, _embedding_inputs(), close,
            names=["text", "idf", "glove"])  # fmt: skip


def _check_coco_lookups(f):
    compare("coco_lookups", f, _coco_lookups, _annotations(),
            lambda got, exp: tuple(got) == exp, names=["annotations"])  # fmt: skip


def _check_image_embedding(f):
    def rows(descriptors, weight):
        return np.array([course_math.image_embedding(x, weight) for x in descriptors])

    compare("image_embedding", f, rows, _embedding_batch(), close,
            names=["descriptors", "weight"])  # fmt: skip
    got = f(np.ones((2, 3)), mg.Tensor(np.eye(3, 2) + 1))
    if not isinstance(got, mg.Tensor):
        raise TaskFailed(
            "image_embedding(descriptors, weight=mygrad.Tensor(...)) returned "
            f"{type(got).__name__}, not a mygrad.Tensor: training cannot back-propagate "
            "through it (use mg.matmul, mg.sqrt, mg.sum: they work on arrays and tensors)"
        )


def _check_similarity(f):
    compare("similarity", f, course_math.similarity, _unit.flatmap(_pair_of_units),
            floats_close, names=["a", "b"])  # fmt: skip


def _check_make_triples(f):
    image_of = {c: 10 + c % 6 for c in range(60)}
    images = [10, 11, 12, 14]
    try:
        triples = [tuple(map(int, t)) for t in f(image_of, images, np.random.default_rng(0))]
    except (TypeError, ValueError) as e:
        problem = f"make_triples must return (caption, true, confusor) id triples: {e}"
        raise TaskFailed(problem) from None
    call = "make_triples(image_of={c: 10 + c % 6 for c in range(60)}, image_ids=[10, 11, 12, 14])"
    wanted = sorted(c for c, m in image_of.items() if m in images)
    if sorted(t[0] for t in triples) != wanted:
        raise TaskFailed(f"{call}\n    expected one triple per caption of those images "
                         f"(captions {wanted[:6]} ...), got captions "
                         f"{sorted(t[0] for t in triples)[:6]} ...")  # fmt: skip
    for c, true, confusor in triples:
        if true != image_of[c] or confusor not in images or confusor == true:
            raise TaskFailed(f"{call}\n    the triple {(c, true, confusor)} is wrong: the true "
                             f"image of caption {c} is {image_of[c]}, the confusor must be "
                             "another of image_ids")  # fmt: skip
    if len({t[2] for t in triples}) < 3:
        raise TaskFailed(f"{call}\n    the confusors are {sorted({t[2] for t in triples})}: "
                         "draw each at random from the other images, with rng")  # fmt: skip


def _check_train_step(f):
    def call(step, args):
        w, *rest = args
        weight = mg.Tensor(np.array(w))
        loss = step(weight, *[np.array(a) if isinstance(a, np.ndarray) else a for a in rest])
        return loss, weight.data

    def same(got, expected):
        return floats_close(got[0], expected[0]) and close(got[1], expected[1])

    compare("train_step", f, _train_step, _step_inputs(), same, call=call,
            names=["weight", "captions", "true_descriptors", "confusor_descriptors", "margin",
                   "learning_rate"])  # fmt: skip


def _check_triple_accuracy(f):
    pairs = st.integers(1, 6).flatmap(
        lambda n: st.tuples(*[st.lists(st.integers(-2, 2).map(float), min_size=n, max_size=n)] * 2)
    )
    compare("triple_accuracy", f, course_math.triple_accuracy, pairs, floats_close,
            names=["sims_true", "sims_confusor"])  # fmt: skip


def _check_rank(f):
    inputs = _scores.flatmap(lambda s: st.tuples(st.just(s), st.integers(0, len(s) - 1)))
    compare("rank_of_true_image", f, course_math.rank_of_true_image, inputs, floats_close,
            names=["scores", "true_index"])  # fmt: skip


def _check_recall(f):
    ranks = st.lists(st.integers(2, 30).map(lambda r: r / 2), min_size=1, max_size=8)
    compare("recall_at_k", f, course_math.recall_at_k, st.tuples(ranks, st.integers(1, 10)),
            floats_close, names=["ranks", "k"])  # fmt: skip


def _check_top_k(f):
    inputs = _scores.flatmap(lambda s: st.tuples(st.just(s), st.integers(1, len(s))))
    compare("top_k", f, course_math.top_k, inputs, lambda got, exp: list(map(int, got)) == exp,
            names=["scores", "k"])  # fmt: skip


TASKS: list[Task] = [
    Task("tokenize", 5, "(text: str) -> list[str]", """\
Split a caption or query into words.

Lowercase the text, remove every character of ``string.punctuation``, split on whitespace.

>>> tokenize("A man's hot-dog, on the  GRILL!")
['a', 'mans', 'hotdog', 'on', 'the', 'grill']
""", _check_tokenize, course_math.tokenize),
    Task("idf", 5, "(captions: list[str]) -> dict[str, float]", """\
Inverse document frequency of every word of the captions.

    IDF(t) = log10(N / n_t)

N is the number of captions, n_t the number of captions holding the word t at least once
(use your ``tokenize``). Return a dict word -> IDF with every word of the captions.
""", _check_idf, course_math.idf),
    Task("caption_embedding", 5,
         "(text: str, idf: dict[str, float], glove: dict[str, np.ndarray]) -> np.ndarray", """\
The IDF-weighted GloVe embedding of a text, unit length.

    e = sum over the tokens t of text of IDF(t) * glove[t];   return e / ||e||

A token without IDF (not in ``idf``) or without a vector (not in ``glove``) adds nothing;
a text of such tokens only embeds to zeros (shape (d,), d = the GloVe dimension).
``glove`` maps each word to its vector, a NumPy array of shape (d,).
""", _check_caption_embedding, course_math.caption_embedding),
    Task("coco_lookups", 5,
         "(annotations: list[dict]) -> tuple[dict[int, list[int]], dict[int, int]]", """\
The COCO organizer's two lookups, from the ``"annotations"`` list of the captions file.

Each annotation is ``{"id": caption_id, "image_id": image_id, "caption": text}``. Return
``(captions_of, image_of)``: ``captions_of[image_id]`` is the list of that image's caption
ids in file order; ``image_of[caption_id]`` is the caption's image id.
""", _check_coco_lookups, _coco_lookups),
    Task("image_embedding", 10, "(descriptors, weight)", """\
Map image descriptors into the caption space: the MyNN ``dense`` forward, then unit rows.

    f(x) = x W / ||x W||       descriptors x: (N, 512), weight W: (512, d) -> (N, d)

Each row is divided by its own norm. ``weight`` may be a NumPy array or a
``mygrad.Tensor`` (in training): use ``mg.matmul``, ``mg.sum``, ``mg.sqrt``, which work on
both, and return what they return (a Tensor when weight is one), so training can
back-propagate through it.
""", _check_image_embedding, _image_embedding),
    Task("similarity", 5, "(a: np.ndarray, b: np.ndarray) -> float", """\
The cosine similarity of two unit vectors of shape (d,): their dot product ``<a, b>``.
""", _check_similarity, course_math.similarity),
    Task("make_triples", 5,
         "(image_of: dict[int, int], image_ids: list[int], rng: np.random.Generator) "
         "-> list[tuple[int, int, int]]", """\
Training triples (caption id, true image id, confusor image id).

One triple for every caption (key of ``image_of``) whose image is in ``image_ids``: its own
image is the true image; the confusor is drawn at random (with ``rng``, e.g.
``rng.integers``) from the *other* images of ``image_ids``.
""", _check_make_triples, _make_triples),
    Task("train_step", 10,
         "(weight, captions, true_descriptors, confusor_descriptors, margin: float, "
         "learning_rate: float) -> float", """\
One step of gradient descent on a batch of B triples, in MyGrad; return the loss (a float).

    s_true = <caption, f(true)>,  s_confusor = <caption, f(confusor)>  (f: your image_embedding)
    loss = mean over the batch of max(0, margin - (s_true - s_confusor))
         = mygrad.nnet.margin_ranking_loss(s_true, s_confusor, 1, margin)

weight: mygrad.Tensor (512, d); captions: (B, d) unit rows; true_descriptors and
confusor_descriptors: (B, 512). Back-propagate the loss, then update the weight in place:
``weight.data -= learning_rate * weight.grad``, and clear its gradient (``weight.null_grad()``).
""", _check_train_step, _train_step),
    Task("triple_accuracy", 5, "(sims_true: list[float], sims_confusor: list[float]) -> float", """\
The fraction of triples whose true image scores strictly higher than its confusor.
""", _check_triple_accuracy, course_math.triple_accuracy),
    Task("rank_of_true_image", 5, "(scores: list[float], true_index: int) -> float", """\
The rank of image ``true_index`` among ``scores`` (one caption's score for every image).

    rank = 1 + #(images scoring higher) + #(other images scoring the same) / 2

Rank 1 is best. Ties count half, so that a model giving every image the same score ranks
at chance, not first.
""", _check_rank, course_math.rank_of_true_image),
    Task("recall_at_k", 5, "(ranks: list[float], k: int) -> float", """\
Recall@K: the fraction of queries whose true image ranks K or better (rank <= k).
""", _check_recall, course_math.recall_at_k),
    Task("top_k", 5, "(scores: list[float], k: int) -> list[int]", """\
The database's top-k query: the indices of the ``k`` highest scores, best first.

``scores`` holds one query's similarity to every image of the database. Equal scores go by
lower index first (``np.argsort`` needs ``kind="stable"`` for that).
""", _check_top_k, course_math.top_k),
]


def task(name: str) -> Task:
    """The task called ``name``; a KeyError lists the tasks."""
    for t in TASKS:
        if t.name == name:
            return t
    raise KeyError(f"no task {name!r}; the tasks: {', '.join(t.name for t in TASKS)}")


@contextlib.contextmanager
def isolated(module, checked: str):
    """Bind every task name of ``module`` but ``checked`` to its reference, for the check."""
    saved = {t.name: getattr(module, t.name, None) for t in TASKS if t.name != checked}
    try:
        for t in TASKS:
            if t.name != checked:
                setattr(module, t.name, t.reference)
        yield
    finally:
        for n, f in saved.items():
            setattr(module, n, f)
