"""Search: a database of image embeddings, queries over it, result grids, your own photos."""
