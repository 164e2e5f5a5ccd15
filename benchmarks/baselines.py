"""The baselines capstone is measured against: the straightforward code of the course notebooks.

Each one computes the same thing as its capstone counterpart, and the benchmarks check that
the results agree, so that a speed-up is not bought with a different answer:

- `embed_loop`: caption embeddings, one caption at a time, with gensim-style word vectors;
- `NumpyTrainer`: the training step with hand-written gradients (the floor for any framework);
- `TorchTrainer`: the same step in PyTorch (CPU), when PyTorch is installed;
- `NumpyInBatchTrainer`: a step of the in-batch recipes (vse0, vse++: both directions, the
  text map, Adam) with hand-written gradients;
- `top_k_argsort`: a query answered with a full sort of the scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from capstone.text.tokens import tokenize

__all__ = [
    "NumpyInBatchTrainer",
    "NumpyTrainer",
    "TorchTrainer",
    "embed_loop",
    "gensim_vectors",
    "top_k_argsort",
]


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
    """The training step of `capstone.training.steps.train_step` in plain NumPy, gradients by hand.

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
        """One SGD step; returns (loss, accuracy) as `capstone.training.steps.train_step`."""
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


def _unit_rows_backward(grad: np.ndarray, unit: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """d/dz of u = z / ||z||, row by row: ``(grad - u <grad, u>) / ||z||``."""
    return (grad - unit * np.einsum("nd,nd->n", grad, unit)[:, None]) / norm


class NumpyInBatchTrainer:
    """A step of `capstone.training.steps.in_batch_step` in plain NumPy, with Adam.

    Forward, for B captions c (unit GloVe embeddings) and their images' descriptors x::

        u = unit(x W),  t = unit(c T),  S = t u^T            (B, B)
        caption i, confusor image j (other image id):  h = margin - S[i, i] + S[i, j]

    "max": per caption the hardest confusor j*, ``loss = mean_i max(0, h(i, j*))``, and per
    image the hardest confusor caption; "sum": the mean over all (i, j). Both directions, the
    loss is the mean of the two. Backward writes
    ``dL/dS`` directly: +a/n at each chosen (i, j), -a/n at its diagonal (i, i) (a: hinge
    active), then ``dL/du = dS^T t``, ``dL/dt = dS u``, through both row normalizations to
    ``dL/dW = x^T dL/dz`` and ``dL/dT = c^T dL/dy``. The update is MyNN's Adam::

        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr m_hat / (sqrt(v_hat) + eps)

    Parameters
    ----------
    weight, text_map : numpy.ndarray, shapes (512, d) and (d, d)
        Initial W and T (copied).
    learning_rate, margin : float
    violation : {"sum", "max"}
    """

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, weight, text_map, learning_rate: float, margin: float, violation: str):
        self.params = [np.array(weight, np.float32), np.array(text_map, np.float32)]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0
        self.learning_rate, self.margin, self.violation = learning_rate, margin, violation

    @property
    def weight(self) -> np.ndarray:
        return self.params[0]

    def step(
        self, captions: np.ndarray, descriptors: np.ndarray, image_ids: np.ndarray
    ) -> tuple[float, float]:
        """One Adam step on a batch; returns (loss, accuracy) as `in_batch_step`."""
        W, T = self.params
        z, y = descriptors @ W, captions @ T
        z_norm = np.sqrt(np.einsum("nd,nd->n", z, z))[:, None]
        y_norm = np.sqrt(np.einsum("nd,nd->n", y, y))[:, None]
        u, t = z / z_norm, y / y_norm
        S = t @ u.T
        mask = image_ids[:, None] != image_ids[None, :]
        diag = np.diag(S)
        dS = np.zeros_like(S)
        loss = 0.0
        for scores in (S, S.T):  # caption -> image; then image -> caption (transposed)
            hinge = self.margin - diag[:, None] + scores
            if self.violation == "max":
                rows = np.flatnonzero(mask.any(axis=1))
                hardest = np.argmax(np.where(mask, scores, -np.inf)[rows], axis=1)
                h = hinge[rows, hardest]
                a = (h > 0) / len(rows)
                d = np.zeros_like(S)
                d[rows, hardest] = a  # one (row, column) each: no repeats
                d[rows, rows] -= a
                loss += float(np.mean(np.maximum(h, 0)))
            else:
                a = ((hinge > 0) & mask) / mask.sum()
                d = a - np.diag(a.sum(axis=1))
                loss += float(np.sum(np.maximum(hinge, 0)[mask]) / mask.sum())
            dS += d if scores is S else d.T
        dS /= 2  # the loss is the mean of the two directions'
        loss /= 2
        dz = _unit_rows_backward(dS.T @ t, u, z_norm)
        dy = _unit_rows_backward(dS @ u, t, y_norm)
        grads = [descriptors.T @ dz, captions.T @ dy]
        self.t += 1
        for p, m, v, g in zip(self.params, self.m, self.v, grads, strict=True):
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            m_hat = m / (1 - self.beta1**self.t)
            v_hat = v / (1 - self.beta2**self.t)
            p -= self.learning_rate * m_hat / (np.sqrt(v_hat) + self.eps)
        accuracy = float(np.mean((diag[:, None] > S)[mask]))
        return loss, accuracy


def top_k_argsort(embeddings: np.ndarray, vector: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` images most similar to one query vector: scores, then a full sort."""
    return np.argsort(-(embeddings @ vector), kind="stable")[:k]
