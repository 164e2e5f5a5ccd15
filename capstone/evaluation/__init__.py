"""Evaluation: triple accuracy and retrieval metrics on held-out images."""
