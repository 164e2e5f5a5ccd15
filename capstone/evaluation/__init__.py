"""Stage 5, evaluation: triple accuracy and retrieval metrics on held-out images."""
