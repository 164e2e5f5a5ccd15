"""Photos to descriptors: preprocessing, ResNet-18 in NumPy and its weights, the describer
(pixels -> the 512-d descriptors COCO's features file holds)."""
