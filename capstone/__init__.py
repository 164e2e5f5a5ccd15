"""capstone: semantic image search over MS-COCO, built with MyGrad and MyNN.

The folders follow the data (read `course_math` first: the same formulas, plainly)::

    data/        paths.locate_data -> coco_files (checked) -> coco.CocoData   glove.load_glove
                 split.split_images (the image-level 4/5 split)                     |
    text/        tokens -> idf (caption statistics)                                 |
    photos/      preprocess -> resnet (ResNet-18) -> describer:                     |
                 your photos -> 512-d descriptors like COCO's;                      |
                 weight_files (read), weights (find or download)                    |
    embeddings/  text.TextEmbedder (IDF-weighted GloVe) <---------------------------+
                 image.ImageEmbedder (the trained map 512 -> d, unit length)
    dataset.py   load_dataset: data, word vectors and caption embeddings in one call
    evaluation/  metrics (Recall@K, median rank, MRR, triple accuracy)
    training/    triples (caption, true image, confusor), losses, optimizers,
                 steps (one step of each recipe), recipes.TrainConfig -> train.train
                 (a TrainResult); checkpoint (run files)
    search/      database.ImageDatabase -> engine.SearchEngine -> display (grids); terms;
                 collection (your own photos)
    runs.py      Run: a trained model with its split, data and word vectors;
                 train (``capstone.train``: training's result, with ``.run``)
    course/      the course kit: compare -> tasks (checks against course_math) -> kit
                 (stubs for students), student (their functions in the pipeline) -> grade
    frontends/   cli (``python -m capstone``), web (``python -m capstone serve``)
    common/      checks, archive, locks, vectors, progress, memory, unpickle, spreadsheet:
                 used by every row
    course_math.py  the course's formulas in plain Python: imports nothing of capstone

A module imports only from the rows above it and from ``common`` (``tests/test_layout.py``
holds the package to it); the names below are the public API.
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
