"""PNG plots of a run: learning curves across phases and the confusion matrix."""

import matplotlib

matplotlib.use("Agg")  # Files only; never needs a display.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def learning_curves(phases, path, title):
    """Loss and accuracy of every phase on one epoch axis, boundaries marked."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for phase in phases:
            epochs = np.arange(len(phase.history[metric])) + phase.first_epoch + 1
            axis.plot(epochs, phase.history[metric], "o-", label=f"{phase.name} train")
            axis.plot(epochs, phase.history[f"val_{metric}"], "s--",
                      label=f"{phase.name} validation")
        for phase in phases[1:]:
            axis.axvline(phase.first_epoch + 0.5, color="grey", linestyle=":")
            axis.text(phase.first_epoch + 0.6, axis.get_ylim()[1], phase.name,
                      va="top", fontsize=8, color="grey")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.set_title(f"{title}: {metric}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def confusion_matrix(matrix, class_names, path, title):
    """Counts with row-normalised shading, class names on both axes."""
    matrix = np.asarray(matrix)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if normalised[row, column] > 0.5 else "black"
        axis.text(column, row, str(count), ha="center", va="center", color=colour)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of true class")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
