"""PNG plots of a run: learning curves across phases, the confusion matrix,
and one-vs-rest ROC curves."""

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


def roc_curves(labels, probabilities, class_names, path, title):
    """One-vs-rest ROC curve of every class, with its AUC in the legend."""
    from sklearn import metrics as skm

    figure, axis = plt.subplots(figsize=(6, 5))
    for index, name in enumerate(class_names):
        positives = labels == index
        if positives.all() or not positives.any():
            continue  # No curve without both positives and negatives.
        false_rate, true_rate, _ = skm.roc_curve(positives, probabilities[:, index])
        axis.plot(false_rate, true_rate,
                  label=f"{name} (AUC {skm.auc(false_rate, true_rate):.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
