"""capstone: semantic image search over MS-COCO, built with MyGrad and MyNN.

The folders follow the data (read `course_math` first: the same formulas, plainly)::

    data/        paths.locate_data -> coco.CocoData (captions, descriptors)   glove.load_glove
                 triples (the image-level split; caption, true, confusor)        |
    text/        tokens -> idf -> embedding.TextEmbedder (IDF-weighted GloVe) <--+
    dataset.py   load_dataset: the two rows above in one call
    image/       photos: preprocess -> resnet (ResNet-18, weights) -> 512-d descriptors;
                 model.ImageEmbedder (dense 512 -> d, unit length)
    evaluation/  metrics (Recall@K, median rank, MRR, triple accuracy)
    search/      database.ImageDatabase -> engine.SearchEngine -> display (grids); terms;
                 collection (your own photos)
    runs.py      Run: one trained model with its split, data and word vectors
    training/    losses, optimizers, recipes.TrainConfig -> train.train (returns a Run)
    frontends/   cli (``python -m capstone``), web (``python -m capstone serve``)
    common/      checks, archive, locks, vectors, progress, memory: used by every stage

A module imports only from the rows above it and from ``common``; the names below are the
public API.
"""

from capstone.data.coco import CocoData
from capstone.data.glove import WordVectors, load_glove
from capstone.data.split import split_images
from capstone.dataset import Dataset, load_dataset
from capstone.embeddings.image import ImageEmbedder
from capstone.embeddings.text import TextEmbedder
from capstone.evaluation.metrics import evaluation_report, retrieval_metrics, triple_accuracy
from capstone.runs import Run, list_runs, train
from capstone.search.database import ImageDatabase, Match
from capstone.search.engine import SearchEngine, SearchResult
from capstone.text.idf import IDF
from capstone.text.tokens import tokenize
from capstone.training.recipes import TrainConfig
from capstone.training.triples import make_triples

__all__ = [
    "IDF",
    "CocoData",
    "Dataset",
    "ImageDatabase",
    "ImageEmbedder",
    "Match",
    "Run",
    "SearchEngine",
    "SearchResult",
    "TextEmbedder",
    "TrainConfig",
    "WordVectors",
    "evaluation_report",
    "list_runs",
    "load_dataset",
    "load_glove",
    "make_triples",
    "retrieval_metrics",
    "split_images",
    "tokenize",
    "train",
    "triple_accuracy",
]

__version__ = "0.1.0"
