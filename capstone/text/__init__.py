"""Stage 2, text: tokens, IDF, and IDF-weighted GloVe embeddings of captions and queries."""
