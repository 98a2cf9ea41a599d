"""Test metrics against scikit-learn's on the same predictions, and the
streaming validation confusion matrix against scikit-learn's after a real fit."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from keras_transfer.training import callbacks
from keras_transfer.evaluation import metrics as evaluate
from keras_transfer.training import phase as train

NAMES = ["cat", "dog", "fox", "owl", "yak"]


def _predictions(seed=0, count=120, classes=5):
    """Labels and softmax outputs that are right more often than chance."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    logits = rng.normal(size=(count, classes)) + 1.5 * np.eye(classes)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


def test_report_agrees_with_scikit_learn():
    labels, probabilities = _predictions()
    predicted = probabilities.argmax(axis=1)
    result = evaluate.report(labels, probabilities, NAMES)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    for average, suffix in (("macro", ""), ("weighted", "_weighted")):
        assert result[f"f1{suffix}"] == pytest.approx(
            skm.f1_score(labels, predicted, average=average))
        assert result[f"precision{suffix}"] == pytest.approx(
            skm.precision_score(labels, predicted, average=average))
        assert result[f"recall{suffix}"] == pytest.approx(
            skm.recall_score(labels, predicted, average=average))
    assert result["auc"] == pytest.approx(
        skm.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"))
    one_hot = label_binarize(labels, classes=range(5))
    per_class_ap = skm.average_precision_score(one_hot, probabilities, average=None)
    assert result["pr_auc"] == pytest.approx(per_class_ap.mean())
    for index, name in enumerate(NAMES):
        assert result["per_class"][name]["pr_auc"] == pytest.approx(per_class_ap[index])
        assert result["per_class"][name]["roc_auc"] == pytest.approx(
            skm.roc_auc_score(one_hot[:, index], probabilities[:, index]))
    assert result["top_k_k"] == 2
    assert result["top_k"] == pytest.approx(skm.top_k_accuracy_score(labels, probabilities, k=2))
    assert result["loss"] == pytest.approx(skm.log_loss(labels, probabilities))
    matrix = skm.confusion_matrix(labels, predicted)
    assert result["confusion_matrix"] == matrix.tolist()
    assert np.allclose(result["confusion_matrix_normalized"],
                       matrix / matrix.sum(axis=1, keepdims=True), atol=1e-4)


def test_expected_calibration_error_by_hand():
    # Two bins used: (0.5, 0.6] holds 2 examples, one right (acc 0.5, conf
    # 0.55); (0.9, 1.0] holds 2, both right (acc 1, conf 0.95).
    probabilities = np.array([[0.55, 0.45], [0.45, 0.55], [0.95, 0.05], [0.05, 0.95]])
    labels = np.array([0, 0, 0, 1])
    expected = 0.5 * abs(0.5 - 0.55) + 0.5 * abs(1.0 - 0.95)
    assert evaluate.expected_calibration_error(labels, probabilities) == pytest.approx(expected)


def test_most_confused_pairs_are_the_largest_off_diagonal_counts():
    matrix = [[5, 3, 0], [1, 6, 0], [0, 4, 2]]
    pairs = evaluate.confused_pairs(matrix, ["a", "b", "c"])
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("c", "b", 4), ("a", "b", 3), ("b", "a", 1)]
    assert pairs[0]["share_of_true"] == pytest.approx(4 / 6)


def test_a_class_absent_from_the_test_split_has_no_auc():
    labels, probabilities = _predictions()
    keep = labels != 4
    result = evaluate.report(labels[keep], probabilities[keep], NAMES)
    assert result["per_class"]["yak"]["roc_auc"] is None
    assert result["auc"] is not None


def test_streaming_confusion_matrix_agrees_with_scikit_learn():
    labels, probabilities = _predictions(seed=1)
    labels[:5] = 4  # Class 3 is never predicted below: zero division.
    probabilities[:, 3] = 0.0
    metric = callbacks.ConfusionMatrixF1(5)
    one_hot = np.eye(5)[labels]
    for start in range(0, len(labels), 32):  # In batches, as fit feeds it.
        metric.update_state(one_hot[start:start + 32], probabilities[start:start + 32])
    predicted = probabilities.argmax(axis=1)
    matrix = keras.ops.convert_to_numpy(metric.matrix)
    assert np.array_equal(matrix, skm.confusion_matrix(labels, predicted, labels=range(5)))
    assert float(metric.result()) == pytest.approx(
        skm.f1_score(labels, predicted, average="macro", zero_division=0))
    precision, recall, f1 = (keras.ops.convert_to_numpy(v)
                             for v in callbacks.per_class_scores(matrix))
    expected = skm.precision_recall_fscore_support(labels, predicted, labels=range(5),
                                                   zero_division=0)
    for ours, theirs in zip((precision, recall, f1), expected):
        assert np.allclose(ours, theirs)
    metric.reset_state()
    assert not keras.ops.convert_to_numpy(metric.matrix).any()


def _event_values(folder):
    """Every summary value TensorBoard's event files in `folder` hold."""
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            yield from event.summary.value


def _event_tags(folder):
    return {value.tag for value in _event_values(folder)}


def test_validation_report_logs_the_matrix_of_each_validation_pass(tmp_path):
    """A real fit: the callback's last matrix is the validation confusion
    matrix of the final weights, as scikit-learn computes it."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype("float32")
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)  # 3 classes.
    x_val, y_val = x[64:], y[64:]
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    metrics = train.make_metrics(3)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy",
                  metrics=metrics)
    report = callbacks.ValidationReport(metrics[-1], ["a", "b", "c"], str(tmp_path / "tb"))
    history = model.fit(x[:64], np.eye(3)[y[:64]], batch_size=16, epochs=3, verbose=0,
                        validation_data=(x_val, np.eye(3)[y_val]), callbacks=[report])
    assert len(report.matrices) == 3
    predicted = model.predict(x_val, verbose=0).argmax(axis=1)
    assert report.matrices[-1] == skm.confusion_matrix(y_val, predicted, labels=range(3)).tolist()
    assert history.history["val_f1"][-1] == pytest.approx(
        skm.f1_score(y_val, predicted, average="macro", zero_division=0), abs=1e-6)
    tags = _event_tags(str(tmp_path / "tb"))
    assert {"confusion_matrix", "epoch_f1_macro", "precision_per_class/a",
            "recall_per_class/c", "f1_per_class/b"} <= tags


def test_monitor_mode_and_best_epoch():
    assert callbacks.monitor_mode("val_loss") == "min"
    assert callbacks.monitor_mode("val_f1") == "max"
    assert train.best_epoch_index([0.5, 0.3, float("nan")], "val_loss") == 1
    assert train.best_epoch_index([0.5, 0.7, 0.6], "val_accuracy") == 1
    assert train.best_epoch_index([float("nan")] * 2, "val_loss") is None


def test_test_images_of_a_folder_are_decoded_as_the_pipeline_decodes_them(tmp_path):
    from PIL import Image

    from keras_transfer.data import sources
    from keras_transfer.data import pipeline

    files = []
    for index, (size, colour) in enumerate([((10, 7), (255, 0, 0)), ((5, 9), (0, 90, 200))]):
        files.append(str(tmp_path / f"{index}.png"))
        Image.new("RGB", size, colour).save(files[-1])
    test = sources.Examples(labels=np.array([0, 1]), files=np.array(files, dtype=object))
    data = type("Data", (), {"test": test, "channels": 3})()
    images = evaluate.test_images(data, 16)
    batch = next(iter(pipeline.make_dataset(test, num_classes=2, batch_size=2,
                                            image_size=16, channels=3)))[0].numpy()
    assert len(images) == 2
    for index in range(2):
        assert images[index].shape == (16, 16, 3)
        assert np.array_equal(images[index], batch[index])


def test_nan_outputs_of_a_diverged_model_are_scored_as_uniform_guesses():
    labels, probabilities = _predictions()
    probabilities[:10] = np.nan
    clean, count = evaluate.replace_non_finite(probabilities)
    assert count == 10 and np.allclose(clean[:10], 0.2)
    assert np.array_equal(clean[10:], probabilities[10:])
    result = evaluate.report(labels, clean, NAMES, count)
    assert result["non_finite_outputs"] == 10
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(labels, clean.argmax(axis=1)))


def test_each_test_image_is_counted_once_and_the_unreadable_are_counted(tmp_path, console):
    """A test image deleted or damaged during a run used to be dropped and
    its slot refilled by the next image: evaluation counted an image twice,
    without a word. Now each readable image counts once, and the report and
    the console say how many could not be read."""
    from PIL import Image

    from keras_transfer.data import pipeline, sources

    files, labels = [], []
    for index in range(6):
        files.append(str(tmp_path / f"{index}.png"))
        Image.new("RGB", (8, 8), (40 * index, 0, 0)).save(files[-1])
        labels.append(index % 2)
    test = sources.Examples(labels=np.array(labels), files=np.array(files, dtype=object))
    dataset = pipeline.make_dataset(test, num_classes=2, batch_size=4, image_size=8,
                                    channels=3, exact=True)
    os.remove(files[1])  # Gone since the folder was checked.
    with open(files[4], "wb") as handle:
        handle.write(b"no longer a PNG")
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    report, seen_labels, _, indices = evaluate.evaluate(model, dataset, ["a", "b"],
                                                        expected=6)
    assert list(indices) == [0, 2, 3, 5]  # Each readable image once, in order.
    assert list(seen_labels) == [labels[i] for i in indices]
    assert report["examples"] == 4 and report["unread"] == 2
    assert ("warning: 2 of 6 test images could not be read (deleted or damaged since "
            "they were checked); the test metrics count the other 4, each once") in (
                console.readouterr().out)
    images = evaluate.test_images(type("Data", (), {"test": test, "channels": 3})(), 8,
                                  indices)
    assert len(images) == 4 and images[3].shape == (8, 8, 3)
