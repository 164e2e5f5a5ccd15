"""A solved kit, written independently of capstone's references (the grader's tests use it)."""

import math
import re
import string
from collections import Counter

import mygrad as mg
import numpy as np
from mygrad.nnet.losses import margin_ranking_loss

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def tokenize(text):
    return _PUNCTUATION.sub("", text.lower()).split()


def idf(captions):
    counts = Counter(word for caption in captions for word in set(tokenize(caption)))
    return {word: math.log10(len(captions) / n) for word, n in counts.items()}


def caption_embedding(text, idf, glove):
    d = len(next(iter(glove.values())))
    words = [w for w in tokenize(text) if w in idf and w in glove]
    e = sum((idf[w] * np.asarray(glove[w], dtype=np.float64) for w in words), np.zeros(d))
    n = np.linalg.norm(e)
    return e / n if n else e


def coco_lookups(annotations):
    captions_of, image_of = {}, {}
    for a in annotations:
        image_of[a["id"]] = a["image_id"]
        captions_of[a["image_id"]] = [*captions_of.get(a["image_id"], []), a["id"]]
    return captions_of, image_of


def image_embedding(descriptors, weight):
    y = mg.matmul(descriptors, weight)
    return y / mg.sqrt(mg.sum(y * y, axis=1, keepdims=True))


def similarity(a, b):
    return float(np.dot(a, b))


def make_triples(image_of, image_ids, rng):
    ids = np.asarray(image_ids)
    wanted = set(ids.tolist())
    out = []
    for caption, image in image_of.items():
        if image not in wanted:
            continue
        others = ids[ids != image]
        out.append((caption, image, int(others[rng.integers(len(others))])))
    return out


def train_step(weight, captions, true_descriptors, confusor_descriptors, margin, learning_rate):
    s_true = mg.sum(captions * image_embedding(true_descriptors, weight), axis=1)
    s_conf = mg.sum(captions * image_embedding(confusor_descriptors, weight), axis=1)
    loss = margin_ranking_loss(s_true, s_conf, 1, margin)
    loss.backward()
    weight.data -= learning_rate * weight.grad
    weight.null_grad()
    return loss.item()


def triple_accuracy(sims_true, sims_confusor):
    return float(np.mean(np.asarray(sims_true) > np.asarray(sims_confusor)))


def rank_of_true_image(scores, true_index):
    s = np.asarray(scores)
    return 1 + np.sum(s > s[true_index]) + (np.sum(s == s[true_index]) - 1) / 2


def recall_at_k(ranks, k):
    return float(np.mean(np.asarray(ranks) <= k))


def top_k(scores, k):
    return np.argsort(-np.asarray(scores), kind="stable")[:k].tolist()
