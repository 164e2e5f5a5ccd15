"""Stage 6, search: a database of image embeddings, queries over it, and result grids."""
