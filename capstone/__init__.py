"""capstone: semantic image search over MS-COCO, built with MyGrad and MyNN.

Where data flows::

    paths.locate_data ─> coco.CocoData (captions, descriptors)      glove.load_glove
                                 │                                         │
                                 └──────────> text.TextEmbedder <──────────┘
                                               (IDF-weighted GloVe)
    triples, losses ─> train.train (recipes) ─> model.ImageEmbedder ─> evaluate
                                                           │
                             database.ImageDatabase <──────┘ ─> search.SearchEngine ─> display

`dataset.load_dataset` runs the top row in one call; ``python -m capstone`` is the command line.
"""

from capstone.coco import CocoData
from capstone.database import ImageDatabase, Match
from capstone.dataset import Dataset, load_dataset
from capstone.evaluate import evaluation_report, retrieval_metrics, triple_accuracy
from capstone.glove import WordVectors, load_glove
from capstone.model import ImageEmbedder
from capstone.runs import Run, list_runs
from capstone.search import SearchEngine, SearchResult
from capstone.text import IDF, TextEmbedder, tokenize
from capstone.train import TrainConfig, train
from capstone.triples import make_triples, split_images

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
