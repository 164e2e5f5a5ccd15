"""Training: triples, losses, optimizers, recipes, checkpoints and the MyGrad training loop."""
