"""The training plot (noggin): loss and accuracy of every batch, validation accuracy per epoch.

It is drawn live, as training goes, only where noggin can redraw a figure: with matplotlib's
nbAgg backend (``%matplotlib notebook``; noggin's own test is ``"nbAgg" in get_backend()``).
Elsewhere (``%matplotlib inline``, every notebook's default, or Agg) live plotting is off
(``max_fraction_spent_plotting=0``, so noggin does not warn) and the figure is drawn once, when
training ends. `train` imports this module only when asked for a plot: it imports matplotlib.
"""

from __future__ import annotations

import matplotlib
from noggin.plotter import LivePlot

__all__ = ["TrainingPlot", "is_live"]

#: At most this fraction of the training time goes into redrawing a live plot (noggin's rule).
LIVE_FRACTION = 0.1


def is_live() -> bool:
    """Whether matplotlib's backend lets noggin redraw the figure while training (nbAgg)."""
    return "nbAgg" in matplotlib.get_backend()


class TrainingPlot(LivePlot):
    """noggin's `LivePlot` of "loss" and "accuracy", with the epochs' validation accuracy
    labelled "validation" (noggin says "test") and a dotted line where the warm-up ends.

    Parameters
    ----------
    warmup_epochs : int, optional (default=0)
        Epochs of VSE++'s warm-up (the vse0 loss); after the last of them a vertical line
        marks the switch to the hardest negative. 0: no warm-up, no line.
    """

    def __init__(self, warmup_epochs: int = 0):
        super().__init__(
            ["loss", "accuracy"], max_fraction_spent_plotting=LIVE_FRACTION if is_live() else 0.0
        )
        self.warmup_epochs = warmup_epochs
        self.n_batches = 0  # the x axis: noggin plots against the batches logged
        self.warmup_end: int | None = None  # batches done when the warm-up ended

    def batch(self, loss: float, accuracy: float, size: int) -> None:
        """Log one training batch of ``size`` rows."""
        self.n_batches += 1
        self.set_train_batch({"loss": loss, "accuracy": accuracy}, batch_size=size)

    def epoch(self, epoch: int, val_accuracy: float, n_val: int) -> None:
        """Close epoch ``epoch`` (1-based) with its accuracy on ``n_val`` validation triples."""
        if epoch == self.warmup_epochs:
            self.warmup_end = self.n_batches
        self.set_train_epoch()
        self.set_test_batch({"accuracy": val_accuracy}, batch_size=n_val)
        self.set_test_epoch()

    def plot(self, plot_batches: bool = True) -> None:
        """noggin's `LivePlot.plot`, then the validation labels and the warm-up line."""
        super().plot(plot_batches=plot_batches)
        fig, axes = self.plot_objects
        for ax in getattr(axes, "flat", [axes]):
            for line in ax.get_lines():
                if line.get_label().startswith("test"):
                    line.set_label("validation" + line.get_label()[len("test") :])
            if self.warmup_end is not None and not any(
                line.get_label() == "end of warm-up" for line in ax.get_lines()
            ):
                ax.axvline(self.warmup_end, ls=":", color="gray", label="end of warm-up")
            ax.legend()
        if is_live():
            fig.canvas.draw_idle()
