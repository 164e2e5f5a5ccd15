"""The baselines capstone is measured against: the straightforward code of the course notebooks.

Each one computes the same thing as its capstone counterpart, and the benchmarks check that
the results agree, so that a speed-up is not bought with a different answer:

- `embed_loop`: caption embeddings, one caption at a time, with gensim-style word vectors;
- `NumpyTrainer`: the training step with hand-written gradients (the floor for any framework);
- `TorchTrainer`: the same step in PyTorch (CPU), when PyTorch is installed;
- `top_k_argsort`: a query answered with a full sort of the scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from capstone.text import tokenize

__all__ = ["NumpyTrainer", "TorchTrainer", "embed_loop", "gensim_vectors", "top_k_argsort"]


def gensim_vectors(words: list[str], vectors: np.ndarray):
    """A ``gensim.models.KeyedVectors`` holding ``vectors`` (V, d) for ``words``.

    The course notebooks look words up in the KeyedVectors that gensim's loader returns;
    building it from arrays gives the same object without parsing the text file again.
    """
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vectors.shape[1], count=len(words), dtype=np.float32)
    kv.add_vectors(words, np.asarray(vectors, dtype=np.float32))
    return kv


def embed_loop(captions: Sequence[str], glove, idf: dict[str, float]) -> np.ndarray:
    """Unit IDF-weighted GloVe sums, one caption and one word at a time, as the notebooks do.

    Parameters
    ----------
    captions : Sequence[str], length N
    glove : gensim.models.KeyedVectors (or any mapping word -> (d,) vector with ``vector_size``)
    idf : dict[str, float]
        IDF of each caption word (words absent have no weight).

    Returns
    -------
    numpy.ndarray, shape (N, d)
        float32; a zero row for a caption none of whose words has both an IDF and a vector.
    """
    out = np.zeros((len(captions), glove.vector_size), dtype=np.float32)
    for i, caption in enumerate(captions):
        vector = np.zeros(glove.vector_size, dtype=np.float32)
        for token in tokenize(caption):
            if token in idf and token in glove:
                vector += idf[token] * glove[token]
        norm = np.linalg.norm(vector)
        if norm > 0:
            out[i] = vector / norm
    return out


class NumpyTrainer:
    """The training step of `capstone.train.train_step` in plain NumPy, gradients by hand.

    Forward, for B triples (caption c, true descriptor x_t, confusor descriptor x_f)::

        z = x W,  u = z / ||z||,  s = <c, u>
        loss = mean(max(0, margin - (s_t - s_f)))

    Backward: ``dL/ds_t = -[margin - (s_t - s_f) > 0] / B = -dL/ds_f``, ``dL/du = dL/ds c``,
    through the row normalization ``dL/dz = (dL/du - u <dL/du, u>) / ||z||``, and
    ``dL/dW = x^T dL/dz``. The update is MyNN's SGD with momentum::

        v = momentum * v - learning_rate * dL/dW;   W = W + v

    Parameters
    ----------
    weight : numpy.ndarray, shape (512, d)
        Initial W (copied).
    learning_rate, momentum, margin : float
    """

    def __init__(self, weight: np.ndarray, learning_rate: float, momentum: float, margin: float):
        self.weight = np.array(weight, dtype=np.float32)
        self.moment = np.zeros_like(self.weight)
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.margin = margin

    def step(
        self, captions: np.ndarray, true_descriptors: np.ndarray, confusor_descriptors: np.ndarray
    ) -> tuple[float, float]:
        """One SGD step on a batch; returns (loss, accuracy) as `capstone.train.train_step`."""
        b = len(captions)
        x = np.concatenate([true_descriptors, confusor_descriptors])
        c = np.concatenate([captions, captions])
        z = x @ self.weight
        norm = np.sqrt(np.einsum("nd,nd->n", z, z))[:, None]
        u = z / norm
        s = np.einsum("nd,nd->n", c, u)
        hinge = self.margin - (s[:b] - s[b:])
        active = hinge > 0
        g = active.astype(np.float32) / b
        ds = np.concatenate([-g, g])
        du = ds[:, None] * c
        dz = (du - u * np.einsum("nd,nd->n", du, u)[:, None]) / norm
        self.moment *= self.momentum
        self.moment -= self.learning_rate * (x.T @ dz)
        self.weight += self.moment
        return float(np.mean(np.where(active, hinge, 0))), float(np.mean(s[:b] > s[b:]))


class TorchTrainer:
    """The same step in PyTorch on the CPU, with ``torch.optim.SGD``.

    PyTorch's momentum ``v = momentum * v + g; W -= lr * v`` is MyNN's update with
    ``v_mynn = -lr * v``: the same weights. Raises ImportError when PyTorch is not installed.
    """

    def __init__(self, weight: np.ndarray, learning_rate: float, momentum: float, margin: float):
        import torch

        self.torch = torch
        self.weight = torch.tensor(np.array(weight, dtype=np.float32), requires_grad=True)
        self.optimizer = torch.optim.SGD([self.weight], lr=learning_rate, momentum=momentum)
        self.margin = margin

    def step(
        self, captions: np.ndarray, true_descriptors: np.ndarray, confusor_descriptors: np.ndarray
    ) -> tuple[float, float]:
        """One SGD step on a batch; returns (loss, accuracy)."""
        torch = self.torch
        b = len(captions)
        x = torch.from_numpy(np.concatenate([true_descriptors, confusor_descriptors]))
        c = torch.from_numpy(np.concatenate([captions, captions]))
        u = torch.nn.functional.normalize(x @ self.weight, dim=1, eps=0.0)
        s = (c * u).sum(dim=1)
        loss = torch.clamp(self.margin - (s[:b] - s[b:]), min=0).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss), float((s[:b] > s[b:]).float().mean())


def top_k_argsort(embeddings: np.ndarray, vector: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` images most similar to one query vector: scores, then a full sort."""
    return np.argsort(-(embeddings @ vector), kind="stable")[:k]
