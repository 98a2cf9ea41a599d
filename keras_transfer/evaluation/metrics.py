"""Test-split evaluation: predictions once, then every number from them."""

import time
import weakref

import keras
import numpy as np
import tensorflow as tf
from sklearn import metrics as skm

from keras_transfer.data import pipeline
from keras_transfer import log
from keras_transfer.log import logger

CALIBRATION_BINS = 10
CONFUSED_PAIRS = 5


# The traced forward pass of each live model: a run evaluates the same model
# up to three times (before and after each phase), and eager calls cost
# seconds. Weak keys: a model that is dropped takes its function with it.
_FORWARD = weakref.WeakKeyDictionary()


def forward(model, channels):
    """`model`'s traced forward pass (inference mode) for batches of float32
    pixels with `channels` channels."""
    if model not in _FORWARD:
        # A plain call, not predict_on_batch: under MirroredStrategy the latter
        # hands every replica the whole batch and returns each one's copy. One
        # signature with a free batch size: the last, smaller batch does not
        # trace again.
        _FORWARD[model] = tf.function(
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)])
    return _FORWARD[model]


def _outputs_indexed(model, dataset, verbose=0, label="test"):
    """Runs `model` once over batched (images, one-hot[, index]) elements;
    returns (outputs, one-hot labels, indices or None). `label` names the
    pass in its progress lines."""
    outputs, labels, indices = [], [], []
    steps = int(dataset.cardinality())
    progress = log.Progress(label, steps if steps > 0 else None, "batch", verbose)
    for step, (images, one_hot, *index) in enumerate(dataset):
        outputs.append(keras.ops.convert_to_numpy(forward(model, images.shape[-1])(images)))
        labels.append(one_hot.numpy())
        indices.extend(index[0].numpy() if index else ())
        progress.update(step + 1)
    progress.finish()
    if not outputs:  # Not one image could be read.
        raise ValueError("no test image could be read: every one was deleted or damaged "
                         "since the data was checked")
    return (np.concatenate(outputs).astype(np.float32),
            np.concatenate(labels).astype(np.float32),
            np.asarray(indices, np.int64) if indices else None)


def outputs_over(model, dataset, verbose=0):
    """Runs `model` once over a batched (images, one-hot) dataset; returns
    (outputs, one-hot labels) as float32 arrays."""
    return _outputs_indexed(model, dataset, verbose)[:2]


def predict(model, dataset, verbose=0, label="test"):
    """(labels, probabilities, indices) over batched (images, one-hot[, index])
    elements; indices None when the dataset carries none."""
    probabilities, one_hot, indices = _outputs_indexed(model, dataset, verbose, label)
    return np.argmax(one_hot, axis=1), probabilities.astype(np.float64), indices


class _DecodedFiles:
    """Image files indexed like an array, decoded (as the pipeline decodes
    them) only when asked: a plot needs a handful, not the whole split."""

    def __init__(self, files, channels, image_size):
        self.files, self.channels, self.image_size = files, channels, image_size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        contents = tf.io.read_file(str(self.files[index]))
        return pipeline.decode_image(contents, self.channels, self.image_size).numpy()


def test_images(data, image_size, indices=None):
    """The test images as pixels, in the order `predict` saw them: those at
    `indices` (what an exact evaluation read), or all."""
    test = data.test if indices is None else data.test.take(indices)
    if test.images is not None:
        return test.images
    return _DecodedFiles(test.files, data.channels, image_size)


def top_k_for(num_classes):
    """k for the top-k metric: only meaningful well below the class count."""
    if num_classes > 10:
        return 5
    return 2 if num_classes > 3 else None


def top_k_accuracy(labels, probabilities, k):
    top = np.argsort(-probabilities, axis=1)[:, :k]
    return float(np.mean([label in row for label, row in zip(labels, top)]))


def expected_calibration_error(labels, probabilities, bins=CALIBRATION_BINS):
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted
    by the share of examples in each bin (Guo et al. 2017)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    # Bin i holds confidences in (i/bins, (i+1)/bins]; the top edge is closed.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def _one_vs_rest(labels, probabilities, score):
    """`score(is_class, probability)` per class; None where the test split
    lacks positives or negatives of the class (the score is undefined)."""
    values = []
    for index in range(probabilities.shape[1]):
        positives = labels == index
        values.append(float(score(positives, probabilities[:, index]))
                      if 0 < positives.sum() < len(labels) else None)
    return values


def _macro(values):
    defined = [value for value in values if value is not None]
    return float(np.mean(defined)) if defined else None


def confused_pairs(matrix, class_names, limit=CONFUSED_PAIRS):
    """The largest off-diagonal counts: which true class goes to which."""
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1)
    pairs = [(int(matrix[t, p]), t, p) for t in range(len(matrix))
             for p in range(len(matrix)) if t != p and matrix[t, p] > 0]
    pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
    return [{"true": class_names[t], "predicted": class_names[p], "count": count,
             "share_of_true": float(count / rows[t])} for count, t, p in pairs[:limit]]


def _averaged(labels, predicted, indices):
    result = {}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            labels, predicted, labels=indices, average=average, zero_division=0)
        suffix = "" if average == "macro" else "_weighted"
        result.update({f"precision{suffix}": float(precision),
                       f"recall{suffix}": float(recall), f"f1{suffix}": float(f1)})
    return result


def replace_non_finite(probabilities):
    """A diverged model outputs NaN: such rows become uniform (no preference,
    so every score treats them as the uninformed guesses they are). Returns
    (probabilities, how many rows were replaced)."""
    bad = ~np.isfinite(probabilities).all(axis=1)
    if not bad.any():
        return probabilities, 0
    probabilities = probabilities.copy()
    probabilities[bad] = 1.0 / probabilities.shape[1]
    return probabilities, int(bad.sum())


def report(labels, probabilities, class_names, non_finite=0):
    """Test metrics as a JSON-ready dict (scikit-learn on the predictions);
    `non_finite`: how many outputs `replace_non_finite` replaced."""
    predicted = np.argmax(probabilities, axis=1)
    indices = list(range(len(class_names)))
    result = {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        # Renormalised: a float32 softmax sums to 1 only within float32 error,
        # which scikit-learn's float64 check warns about.
        "loss": float(skm.log_loss(
            labels, probabilities / probabilities.sum(axis=1, keepdims=True),
            labels=indices)),
        "examples": int(len(labels)),
        "non_finite_outputs": non_finite,
        **_averaged(labels, predicted, indices),
    }
    roc = _one_vs_rest(labels, probabilities, skm.roc_auc_score)
    pr = _one_vs_rest(labels, probabilities, skm.average_precision_score)
    # Macro one-vs-rest ROC AUC: the mean of the per-class AUCs, which is what
    # scikit-learn's roc_auc_score(multi_class="ovr") gives when all are defined.
    result["auc"], result["pr_auc"] = _macro(roc), _macro(pr)
    k = top_k_for(len(class_names))
    result["top_k"] = top_k_accuracy(labels, probabilities, k) if k else None
    result["top_k_k"] = k
    result["ece"] = expected_calibration_error(labels, probabilities)
    result["ece_bins"] = CALIBRATION_BINS
    result["mean_confidence"] = float(probabilities.max(axis=1).mean())
    per_class = skm.precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0)
    result["per_class"] = {
        name: {"precision": float(per_class[0][i]), "recall": float(per_class[1][i]),
               "f1": float(per_class[2][i]), "support": int(per_class[3][i]),
               "roc_auc": roc[i], "pr_auc": pr[i]}
        for i, name in enumerate(class_names)
    }
    matrix = skm.confusion_matrix(labels, predicted, labels=indices)
    result["confusion_matrix"] = matrix.tolist()
    result["confusion_matrix_normalized"] = (
        matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)).round(4).tolist()
    result["most_confused"] = confused_pairs(matrix, class_names)
    result["class_names"] = list(class_names)
    return result


# What a phase's test summary keeps (the full report is for the final model).
SUMMARY_KEYS = ("accuracy", "f1", "auc", "pr_auc", "loss", "ece", "top_k",
                "non_finite_outputs")


def summary(full_report):
    return {key: full_report[key] for key in SUMMARY_KEYS}


def evaluate(model, dataset, class_names, verbose=0, expected=None, label="test"):
    """Predicts the test split once; returns (report dict, labels, probs,
    indices of the examples read, or None when the dataset carries none).

    With `expected` (the split's size), the report's `unread` counts the
    images that could not be read now (deleted or damaged since they were
    checked), and a warning says so: the metrics count each image read once.
    """
    start = time.time()
    labels, probabilities, indices = predict(model, dataset, verbose, label)
    probabilities, non_finite = replace_non_finite(probabilities)
    result = report(labels, probabilities, class_names, non_finite)
    result["unread"] = max(0, expected - len(labels)) if expected is not None else 0
    if result["unread"]:
        logger.warning(
            f"warning: {result['unread']} of {expected} test images could not be read "
            "(deleted or damaged since they were checked); the test metrics count the "
            f"other {len(labels)}, each once")
    result["seconds"] = round(time.time() - start, 2)
    return result, labels, probabilities, indices
