"""`--phase=distill`: a student learns from a finished run (its teacher).

The loss of each training image is

    alpha * CE(label, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))

with the cross-entropy only where the image has a label (`--unlabeled_data`
images have none). The teacher is frozen, so its outputs on unaugmented
images never change: they are recorded once, before training, and travel with
their images through the input pipeline as part of the target (`pack`). With
`--augment` the student sees a new view of each image every epoch, and the
teacher runs on that same view inside the step.

`keras.distillation.Distiller` runs the teacher in every step and owns the
training step; ours must train on recorded outputs, inside our loop (every
strategy, resume, backups, metrics callbacks). So the student is wrapped in
`DistillingStudent`, a functional model over the student's own layers whose
compiled loss is `DistillationLoss`; the temperature-scaled KL term itself is
`keras.distillation.LogitsDistillation`'s.
"""

import keras
import numpy as np

# Below this a probability is 0 to the temperature-scaled softmax: its log
# stands in for the logit the classifier's fused softmax does not expose
# (softmax(log p / T) equals softmax(z / T) for p = softmax(z)).
_LOG_FLOOR = 1e-30


def pack(labels_one_hot, has_label, teacher_probabilities):
    """The training target of each image: [one-hot label | has a label |
    the teacher's probabilities], float32 [n, 2 * classes + 1]."""
    has_label = np.asarray(has_label, np.float32)[:, None]
    return np.concatenate([np.asarray(labels_one_hot, np.float32) * has_label, has_label,
                           np.asarray(teacher_probabilities, np.float32)], axis=1)


def unpack(targets, num_classes):
    """(one-hot labels, has-a-label mask, teacher probabilities or None)."""
    if targets.shape[-1] == num_classes:  # Validation: labels only.
        return targets, None, None
    return (targets[..., :num_classes], targets[..., num_classes],
            targets[..., num_classes + 1:])


def _logits(probabilities):
    return keras.ops.log(keras.ops.maximum(keras.ops.cast(probabilities, "float32"),
                                           _LOG_FLOOR))


class DistillationLoss(keras.losses.Loss):
    """Per image: alpha * CE on labelled images + (1 - alpha) * T^2 * KL;
    on targets without a teacher part (validation), the cross-entropy alone,
    so `val_loss` reads as in every other phase."""

    def __init__(self, num_classes, temperature, alpha, label_smoothing=0.0,
                 name="distillation"):
        super().__init__(name=name)
        self.num_classes, self.alpha = num_classes, alpha
        self.temperature = temperature
        self._cross_entropy = keras.losses.CategoricalCrossentropy(
            label_smoothing=label_smoothing, reduction=None)
        # An instance, not the string: `LogitsDistillation` applies the softmax
        # and the T^2 factor only to a `KLDivergence` object; "kl_divergence"
        # resolves to the plain function, which it applies to raw logits.
        self._soft = keras.distillation.LogitsDistillation(
            temperature=temperature, loss=keras.losses.KLDivergence())

    def call(self, y_true, y_pred):
        labels, has_label, teacher = unpack(y_true, self.num_classes)
        cross_entropy = self._cross_entropy(labels, y_pred)
        if teacher is None:
            return cross_entropy
        # Image by image: `LogitsDistillation.compute_loss` returns the batch
        # mean, so each image goes in as a batch of one (vectorized).
        soft = keras.ops.vectorized_map(
            lambda pair: self._soft.compute_loss(pair[0][None], pair[1][None]),
            (_logits(teacher), _logits(y_pred)))
        return self.alpha * has_label * cross_entropy + (1.0 - self.alpha) * soft

    def get_config(self):
        return {"num_classes": self.num_classes, "temperature": self.temperature,
                "alpha": self.alpha, "name": self.name}


class DistillingStudent(keras.Model):
    """The student's layers, fitted against packed targets.

    Metrics count labelled images only, against their labels. With a
    `teacher` (the `--augment` case), the teacher's probabilities are
    computed on the batch the student sees instead of read from the target.
    """

    def __init__(self, student, num_classes, teacher=None, **kwargs):
        super().__init__(student.inputs, student.outputs, name=f"distilling_{student.name}",
                         **kwargs)
        self.num_classes = num_classes
        self.teacher = teacher

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.teacher is not None and y.shape[-1] != self.num_classes:
            probabilities = keras.ops.stop_gradient(self.teacher(x, training=False))
            y = keras.ops.concatenate(
                [y[..., :self.num_classes + 1], keras.ops.cast(probabilities, y.dtype)], -1)
        return super().compute_loss(x, y, y_pred, sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, has_label, _ = unpack(y, self.num_classes)
        if has_label is not None:
            sample_weight = has_label if sample_weight is None else sample_weight * has_label
        return super().compute_metrics(x, labels, y_pred, sample_weight=sample_weight)
