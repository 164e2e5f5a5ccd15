"""Embeddings into the shared caption space: TextEmbedder (IDF-weighted GloVe of captions and
queries) and ImageEmbedder (the trained map of 512-d ResNet-18 descriptors)."""
