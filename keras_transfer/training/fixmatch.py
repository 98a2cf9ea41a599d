"""`--semi_supervised=fixmatch` (Sohn et al., 2020): each step, the labelled
batch's loss as in every phase, plus the unlabelled batch's

    lambda(t) * mean over images of [max p(weak) >= tau] * CE(argmax p(weak), p(strong))

where p(weak) is the model's own prediction on the weak view (no gradient
through it), lambda(t) `--unlabeled_weight` rising linearly from 0 over
`--unlabeled_warmup_epochs`, and tau `--confidence_threshold` times the
model's mean confidence on the (global) labelled batch: AdaMatch's relative threshold
(Berthelot et al., 2021). An absolute 0.95 is FixMatch's, trained without
label smoothing; ours (0.1 by default) holds every confidence near 0.92 on
five classes, and measured on digits an absolute 0.95 let 0.3 % of the pool
through.

As distillation's `DistillingStudent`, `FixMatchModel` wraps the classifier
(sharing its layers) so that the step stays Keras' own, inside our loop:
every strategy, resume, backups, metrics callbacks. It takes the three
batches as one input tuple; given one batch (validation, test) it is the
classifier. Two extra metrics show what the unlabelled images did: the share
above the threshold (`mask_rate`) and, where the pool's labels are known
(`rest`), how many of those pseudo-labels are right (`pseudo_label_accuracy`).
"""

import keras
import tensorflow as tf


class FixMatchModel(keras.Model):
    """The classifier, trained on labelled and unlabelled batches together."""

    # Measured on the unlabelled batches: no validation counterpart.
    TRAINING_ONLY_METRICS = ("mask_rate", "pseudo_label_accuracy")

    def __init__(self, classifier, *, num_classes, threshold, weight, warmup_steps,
                 labels_known=False, **kwargs):
        super().__init__(name=f"fixmatch_{classifier.name}", **kwargs)
        self.classifier = classifier
        self.num_classes = num_classes
        self.threshold, self.weight = threshold, weight
        self.warmup_steps = warmup_steps
        # Mean over the unlabelled batch of mask * CE(pseudo-label, strong).
        self._pseudo_label_loss = keras.losses.CategoricalCrossentropy()
        self.mask_rate = keras.metrics.Mean(name="mask_rate")
        # Only where the pool's labels are known: else it would read 0.
        self.pseudo_label_accuracy = (keras.metrics.Mean(name="pseudo_label_accuracy")
                                      if labels_known else None)

    def call(self, inputs, training=False):
        if not isinstance(inputs, (tuple, list)):
            return self.classifier(inputs, training=training)
        labelled, weak, strong = inputs
        count = keras.ops.shape(weak)[0]
        # One pass over both views: the base sees them as one batch.
        views = self.classifier(keras.ops.concatenate([weak, strong]), training=training)
        return self.classifier(labelled, training=training), views[:count], views[count:]

    def unlabelled_weight(self):
        """lambda(t): `weight`, after a linear rise over `warmup_steps`."""
        if not self.warmup_steps:
            return self.weight
        step = keras.ops.cast(self.optimizer.iterations, "float32")
        return self.weight * keras.ops.minimum(1.0, step / float(self.warmup_steps))

    def pseudo_labels(self, weak, labelled):
        """(one-hot pseudo-labels, mask of those at or above the threshold
        relative to the confidence on the `labelled` batch)."""
        weak = keras.ops.stop_gradient(keras.ops.cast(weak, "float32"))
        confidence = keras.ops.max(keras.ops.cast(labelled, "float32"), axis=-1)
        total = keras.ops.sum(confidence)
        count = keras.ops.cast(keras.ops.shape(confidence)[0], "float32")
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            # The global labelled batch's mean, not each replica's share's:
            # the same threshold on every replica, as on one device.
            total, count = replica.all_reduce("SUM", [total, count])
        ceiling = keras.ops.stop_gradient(total / keras.ops.maximum(count, 1.0))
        confident = keras.ops.cast(
            keras.ops.max(weak, axis=-1) >= self.threshold * ceiling, "float32")
        return keras.ops.one_hot(keras.ops.argmax(weak, axis=-1), self.num_classes), confident

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, (tuple, list)):  # Validation: the classifier's loss.
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        labels, _ = y
        labelled, weak, strong = y_pred
        supervised = super().compute_loss(x[0], labels, labelled, sample_weight,
                                          training=training)
        pseudo, confident = self.pseudo_labels(weak, labelled)
        # A Keras loss, not a plain mean: its reduction divides by the
        # replicas as the compiled loss does, so the gradients summed over
        # replicas weigh both terms alike under every strategy.
        unlabelled = self._pseudo_label_loss(pseudo, keras.ops.cast(strong, "float32"),
                                             sample_weight=confident)
        return supervised + self.unlabelled_weight() * unlabelled

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if not isinstance(y_pred, (tuple, list)):
            return super().compute_metrics(x, y, y_pred, sample_weight)
        labels, pool = y
        labelled, weak, _ = y_pred
        pseudo, confident = self.pseudo_labels(weak, labelled)
        self.mask_rate.update_state(confident)
        if self.pseudo_label_accuracy is not None:
            right = keras.ops.cast(keras.ops.argmax(pseudo, -1) == keras.ops.argmax(
                pool[..., :self.num_classes], -1), "float32")
            self.pseudo_label_accuracy.update_state(
                right, sample_weight=pool[..., self.num_classes] * confident)
        return super().compute_metrics(x[0], labels, labelled, sample_weight)

    @property
    def metrics(self):
        extra = [self.mask_rate] + ([self.pseudo_label_accuracy]
                                    if self.pseudo_label_accuracy is not None else [])
        return [*super().metrics, *extra]
