"""Data: where the files live, COCO's captions and descriptors, GloVe, the demo data, and the
image-level split."""
