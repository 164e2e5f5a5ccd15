"""Stage 4, training: losses, optimizers, recipes and the MyGrad training loop."""
