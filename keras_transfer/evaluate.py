"""Test-split evaluation: predictions once, then every number from them."""

import time

import keras
import numpy as np
from sklearn import metrics as skm

from keras_transfer import train


def predict(model, dataset, verbose=0):
    """Returns (labels, probabilities) over a batched (images, one-hot) dataset."""
    labels, probabilities = [], []
    steps = int(dataset.cardinality())
    progress = keras.utils.Progbar(steps if steps > 0 else None, verbose=verbose,
                                   unit_name="batch") if verbose else None
    for step, (images, one_hot) in enumerate(dataset):
        # A plain call, not predict_on_batch: under MirroredStrategy the latter
        # hands every replica the whole batch and returns each one's copy.
        probabilities.append(keras.ops.convert_to_numpy(model(images, training=False)))
        labels.append(np.argmax(one_hot.numpy(), axis=1))
        if progress:
            progress.update(step + 1)
    return np.concatenate(labels), np.concatenate(probabilities)


def _top_k(labels, probabilities, k):
    top = np.argsort(-probabilities, axis=1)[:, :k]
    return float(np.mean([label in row for label, row in zip(labels, top)]))


def report(labels, probabilities, class_names):
    """Test metrics as a JSON-ready dict (scikit-learn on the predictions)."""
    predicted = np.argmax(probabilities, axis=1)
    indices = list(range(len(class_names)))
    per_class = skm.precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0
    )
    result = {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "loss": float(skm.log_loss(labels, probabilities, labels=indices)),
        "examples": int(len(labels)),
    }
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            labels, predicted, labels=indices, average=average, zero_division=0
        )
        suffix = "" if average == "macro" else "_weighted"
        result.update({f"precision{suffix}": float(precision),
                       f"recall{suffix}": float(recall), f"f1{suffix}": float(f1)})
    try:
        result["auc"] = float(skm.roc_auc_score(
            labels, probabilities, multi_class="ovr", labels=indices
        ) if len(class_names) > 2 else skm.roc_auc_score(labels, probabilities[:, 1]))
    except ValueError:  # A class absent from the test split.
        result["auc"] = None
    k = train.top_k_for(len(class_names))
    result["top_k"] = _top_k(labels, probabilities, k) if k else None
    result["top_k_k"] = k
    result["per_class"] = {
        name: {"precision": float(per_class[0][i]), "recall": float(per_class[1][i]),
               "f1": float(per_class[2][i]), "support": int(per_class[3][i])}
        for i, name in enumerate(class_names)
    }
    result["confusion_matrix"] = skm.confusion_matrix(
        labels, predicted, labels=indices
    ).tolist()
    result["class_names"] = list(class_names)
    return result


def evaluate(model, dataset, class_names, verbose=0):
    """Predicts the test split once and returns (report dict, labels, probs)."""
    start = time.time()
    labels, probabilities = predict(model, dataset, verbose)
    result = report(labels, probabilities, class_names)
    result["seconds"] = round(time.time() - start, 2)
    return result, labels, probabilities
