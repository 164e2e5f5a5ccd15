"""Training: triples, losses, optimizers, recipes, checkpoints, MyGrad steps and the loop."""
