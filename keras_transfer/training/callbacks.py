"""Per-epoch validation metrics: a streaming confusion matrix and what follows
from it (per-class precision, recall, F1), logged to TensorBoard.

The confusion matrix is a Keras metric compiled with the model, so `fit`
accumulates it batch by batch in a variable during its own validation pass:
no second pass over the data and no Python list of predictions.
"""

import contextlib
import io
import os

import keras
import numpy as np
import tensorflow as tf

from keras_transfer import disk_space
from keras_transfer.evaluation import plots


def monitor_mode(monitor):
    """"min" for losses, "max" for every score (accuracy, F1, AUC, ...)."""
    return "min" if monitor.endswith("loss") else "max"


@keras.saving.register_keras_serializable(package="keras_transfer")
class ConfusionMatrixF1(keras.metrics.Metric):
    """Macro F1 of the arg-max class, from a streaming confusion matrix.

    `result()` is the macro F1 (so `val_f1` can be a monitor); the matrix
    itself (rows: true class, columns: predicted) stays readable in
    `self.matrix` for the callback below.
    """

    def __init__(self, num_classes, name="f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.matrix = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", name="matrix",
            dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = keras.ops.one_hot(keras.ops.argmax(y_true, axis=-1), self.num_classes)
        predicted = keras.ops.one_hot(keras.ops.argmax(y_pred, axis=-1), self.num_classes)
        if sample_weight is not None:  # class_weight arrives as sample weights.
            true = true * keras.ops.reshape(keras.ops.cast(sample_weight, "float32"), (-1, 1))
        # (classes x batch) @ (batch x classes): counts of (true, predicted).
        self.matrix.assign_add(keras.ops.matmul(keras.ops.transpose(true), predicted))

    def result(self):
        return keras.ops.mean(per_class_scores(self.matrix)[2])

    def reset_state(self):
        self.matrix.assign(keras.ops.zeros_like(self.matrix))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def per_class_scores(matrix):
    """(precision, recall, f1) per class; 0 where undefined, as scikit-learn's
    zero_division=0."""
    matrix = keras.ops.convert_to_tensor(matrix, "float32")
    hits = keras.ops.diagonal(matrix)
    predicted, actual = keras.ops.sum(matrix, axis=0), keras.ops.sum(matrix, axis=1)
    precision = keras.ops.divide_no_nan(hits, predicted)
    recall = keras.ops.divide_no_nan(hits, actual)
    f1 = keras.ops.divide_no_nan(2 * precision * recall, precision + recall)
    return precision, recall, f1


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` whose file is replaced, never rewritten in place: a
    run killed while it saves keeps the previous best intact."""

    def on_epoch_end(self, epoch, logs=None):
        final = self.filepath
        folder, name = os.path.split(final)
        needed = disk_space.weights_bytes(self.model)
        disk_space.require(folder, name, needed)
        self.filepath = os.path.join(folder, f".tmp-{os.getpid()}-{name}")
        try:
            super().on_epoch_end(epoch, logs)
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.remove(self.filepath)
            if disk_space.is_out_of_space(error):
                raise disk_space.full(folder, name, needed + disk_space.HEADROOM_BYTES) from None
            raise
        finally:
            temporary, self.filepath = self.filepath, final
        if os.path.exists(temporary):
            os.replace(temporary, final)


class ValidationReport(keras.callbacks.Callback):
    """Logs the validation confusion matrix and per-class scores every epoch.

    The snapshot is taken at the end of each validation pass (`on_test_end`),
    when the compiled metric holds the validation counts, and written at the
    epoch's end as TensorBoard scalars and a confusion-matrix image.
    """

    def __init__(self, metric, class_names, log_dir):
        super().__init__()
        self.metric = metric
        self.class_names = list(class_names)
        self.log_dir = log_dir
        self.matrices = []  # One validation confusion matrix per epoch.
        self._snapshot = None
        self._writer = None

    def on_train_begin(self, logs=None):
        os.makedirs(self.log_dir, exist_ok=True)
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_test_end(self, logs=None):
        self._snapshot = keras.ops.convert_to_numpy(self.metric.matrix).round().astype(int)

    def on_epoch_end(self, epoch, logs=None):
        if self._snapshot is None:  # No validation pass this epoch.
            return
        matrix, self._snapshot = self._snapshot, None
        self.matrices.append(matrix.tolist())
        scores = [keras.ops.convert_to_numpy(s) for s in per_class_scores(matrix)]
        with self._writer.as_default(step=epoch):
            for name, values in zip(("precision", "recall", "f1"), scores):
                tf.summary.scalar(f"epoch_{name}_macro", float(np.mean(values)))
                for class_name, value in zip(self.class_names, values):
                    tf.summary.scalar(f"{name}_per_class/{class_name}", float(value))
            tf.summary.image("confusion_matrix", _png_tensor(matrix, self.class_names, epoch))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


def _png_tensor(matrix, class_names, epoch):
    """The confusion-matrix plot as a [1, H, W, 4] uint8 image tensor."""
    buffer = io.BytesIO()
    plots.confusion_matrix(matrix, class_names, buffer,
                           f"validation confusion matrix, epoch {epoch + 1}")
    return tf.expand_dims(tf.image.decode_png(buffer.getvalue(), channels=4), 0)
