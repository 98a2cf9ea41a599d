"""`--phase=multitask`'s step: one base, a head per task, one batch of
every task a step, and the loss

    sum over tasks i of  w_i * CE_i                       (--task_weighting=fixed)
    sum over tasks i of  exp(-s_i) * CE_i + s_i / 2       (--task_weighting=uncertainty)

plus the model's regularisation, once. `w_i` are `--task_weights`; `s_i`
is the log-variance of task i, learned with the network: Kendall, Gal and
Cipolla (2018), eq. 10 for classification (1/sigma^2 * CE + log sigma), so
a task whose loss stays high is weighted down, and the s_i / 2 term keeps
the weights from falling to 0.

As FixMatch's and distillation's wrappers, `MultiTaskModel` holds the task
classifiers (sharing their base) so that the step stays Keras' own inside
our loop: every strategy, resume, backups and metrics callbacks. Given a
tuple of batches, one per task, it returns every head's output; given one
batch (validation, test) it is the target's classifier, whose compiled
loss and metrics are the phase's `val_*`. Per task, the training logs hold
`<task>_loss` (its cross-entropy), `<task>_accuracy` and `<task>_weight`
(the weight its loss had).
"""

import keras
import tensorflow as tf


class MultiTaskModel(keras.Model):
    """Task classifiers on one base, trained together; `heads[0]` is the target's."""

    def __init__(self, heads, task_names, *, weights=None, uncertainty=False,
                 label_smoothing=0.0, **kwargs):
        super().__init__(name=f"multitask_{heads[0].name}", **kwargs)
        self.heads = list(heads)
        self.task_names = tuple(task_names)
        self.fixed_weights = tuple(weights or (1.0,) * len(heads))
        self.uncertainty = uncertainty
        # s_i = log sigma_i^2, from 0 (every weight 1).
        self.log_variances = self.add_weight(
            shape=(len(heads),), initializer="zeros", name="log_variances",
            trainable=uncertainty) if uncertainty else None
        # A Keras loss, not a plain mean: its reduction divides by the
        # replicas as the compiled loss does, so the gradients summed over
        # replicas weigh every task alike under every strategy. Stateless:
        # one serves every task.
        self._task_loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        self._label_smoothing = label_smoothing
        self._task_metrics = [
            (keras.metrics.Mean(name=f"{name}_loss"),
             keras.metrics.CategoricalAccuracy(name=f"{name}_accuracy"),
             keras.metrics.Mean(name=f"{name}_weight")) for name in self.task_names]
        self.TRAINING_ONLY_METRICS = tuple(  # pylint: disable=invalid-name
            metric.name for group in self._task_metrics for metric in group)

    def call(self, inputs, training=False):
        if not isinstance(inputs, (tuple, list)):
            return self.heads[0](inputs, training=training)
        return tuple(head(images, training=training) for head, images in zip(self.heads, inputs))

    def task_weights(self):
        """Each task's weight in the loss this step: fixed, or exp(-s_i)."""
        if self.log_variances is None:
            return keras.ops.convert_to_tensor(self.fixed_weights, "float32")
        return keras.ops.exp(-self.log_variances)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, (tuple, list)):  # Validation: the target's loss.
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        weights = self.task_weights()
        total = sum(weights[i] * self._task_loss(labels, keras.ops.cast(predicted, "float32"))
                    for i, (labels, predicted) in enumerate(zip(y, y_pred)))
        if self.log_variances is not None:
            # Not a per-image loss: the replicas' gradients are summed, so
            # each contributes its share.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            total += keras.ops.sum(self.log_variances) / (2.0 * replicas)
        for loss in self.losses:  # Regularisation, once, as compute_loss adds it.
            total += keras.ops.sum(keras.ops.cast(loss, "float32"))
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if not isinstance(y_pred, (tuple, list)):
            return super().compute_metrics(x, y, y_pred, sample_weight)
        weights = self.task_weights()
        for i, (labels, predicted) in enumerate(zip(y, y_pred)):
            loss, accuracy, weight = self._task_metrics[i]
            predicted = keras.ops.cast(predicted, "float32")
            smoothed = keras.losses.categorical_crossentropy(
                labels, predicted, label_smoothing=self._label_smoothing)
            loss.update_state(smoothed)
            accuracy.update_state(labels, predicted)
            weight.update_state(weights[i])
        return super().compute_metrics(x[0], y[0], y_pred[0], sample_weight)

    @property
    def metrics(self):
        return [*super().metrics, *(metric for group in self._task_metrics for metric in group)]
