"""PNG plots of a run (learning curves across phases, confusion matrix, ROC
curves, the most confidently wrong test images), of a comparison of runs, and
an autoencoder's reconstructions."""

import os

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
            axis.plot(epochs, _floats(phase.history[metric]), "o-", label=f"{phase.name} train")
            axis.plot(epochs, _floats(phase.history[f"val_{metric}"]), "s--",
                      label=f"{phase.name} validation")
            if phase.best_epoch is not None:  # The epoch the phase kept.
                best = phase.history[f"val_{metric}"][phase.best_epoch - phase.first_epoch - 1]
                axis.plot([phase.best_epoch], [np.nan if best is None else best], "*",
                          markersize=14, color="gold", markeredgecolor="black",
                          label=f"{phase.name} best ({phase.monitor})")
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


def _floats(values):
    """History values with None (a diverged, non-finite epoch) as gaps."""
    return np.array([np.nan if value is None else value for value in values], float)


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
    """One-vs-rest ROC curve of every class, its AUC in the legend."""
    from sklearn import metrics as skm  # Only this plot needs it.

    figure, axis = plt.subplots(figsize=(6, 5.5))
    for index, name in enumerate(class_names):
        positives = labels == index
        if not 0 < positives.sum() < len(labels):
            continue  # Undefined without both positives and negatives.
        false_rate, true_rate, _ = skm.roc_curve(positives, probabilities[:, index])
        auc = skm.auc(false_rate, true_rate)
        axis.plot(false_rate, true_rate, label=f"{name} (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right", ncol=1 if len(class_names) <= 12 else 2)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def misclassified(images, labels, probabilities, class_names, path, title, limit=16):
    """A grid of the most confidently wrong images, true and predicted labels
    above each. Returns how many were shown (0: no mistakes, no file)."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:limit]
    if not len(wrong):
        return 0
    columns = min(4, len(wrong))
    rows = int(np.ceil(len(wrong) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows + 0.6),
                                squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, wrong):
        image = np.asarray(images[index], dtype=np.float32)
        if image.shape[-1] == 1:
            axis.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            axis.imshow(np.clip(image[..., :3], 0, 255).astype(np.uint8))
        axis.set_title(f"true: {class_names[labels[index]]}\n"
                       f"predicted: {class_names[predicted[index]]} "
                       f"({probabilities[index, predicted[index]]:.0%})", fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return len(wrong)


def image_rows(rows, path, title):
    """Rows of images side by side, a label at the left of each row: `rows`
    is [(label, images on 0-1, N x H x W x 3)] (an autoencoder's inputs,
    reconstructions and originals)."""
    columns = max(len(images) for _, images in rows)
    figure, axes = plt.subplots(len(rows), columns, squeeze=False,
                                figsize=(1.4 * columns + 1.2, 1.5 * len(rows) + 0.6))
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_frame_on(False)
    for row, (label, images) in enumerate(rows):
        axes[row, 0].set_ylabel(label, fontsize=9)
        for column, image in enumerate(images):
            axes[row, column].imshow(np.clip(np.asarray(image, np.float32), 0.0, 1.0))
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def comparison_bars(names, values, path, title):
    """Grouped bars: one group per run, one bar per metric (values: dict of
    metric -> list aligned with `names`; None bars are left out)."""
    figure, axis = plt.subplots(figsize=(max(7, 1.8 * len(names) + 3), 4.5))
    width = 0.8 / len(values)
    positions = np.arange(len(names))
    for offset, (metric, numbers) in enumerate(values.items()):
        heights = [np.nan if n is None else n for n in numbers]
        bars = axis.bar(positions + offset * width - 0.4 + width / 2, heights, width,
                        label=metric)
        axis.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    axis.set_xticks(positions, names, fontsize=8)
    axis.set_ylim(0, 1.1)
    axis.set_xlabel("run")
    axis.set_ylabel("test score")
    axis.set_title(title)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_run_plots(output_dir, phases, report, labels, probabilities, images, title):
    """Writes a run's PNGs; returns {name: file name} of those written."""
    names = report["class_names"]
    written = {"learning_curves": "learning_curves.png",
               "confusion_matrix": "confusion_matrix.png", "roc": "roc.png"}
    learning_curves(phases, os.path.join(output_dir, written["learning_curves"]), title)
    confusion_matrix(report["confusion_matrix"], names,
                     os.path.join(output_dir, written["confusion_matrix"]),
                     f"{title}: test confusion matrix")
    roc_curves(labels, probabilities, names, os.path.join(output_dir, written["roc"]),
               f"{title}: test ROC, one class vs rest")
    if misclassified(images, labels, probabilities, names,
                     os.path.join(output_dir, "misclassified.png"),
                     f"{title}: most confidently wrong test images"):
        written["misclassified"] = "misclassified.png"
    return written
