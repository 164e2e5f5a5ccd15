"""Stage 3, images: the linear map from a ResNet-18 descriptor to the caption space."""
