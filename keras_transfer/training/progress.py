"""A training pass's progress on the console, labelled with the pass.

Keras' `ProgbarLogger` prints "Epoch 3/10" whichever of a run's passes is
training (the source base, phase 1, fine-tuning, the baseline), and under
`verbose=2` nothing at all until an epoch ends: an epoch of several minutes
in a log file looks like a hang. `EpochProgress` takes its place in the loop.
"""

import keras
import numpy as np

from keras_transfer import log

# What a run's phases are called on the console (`run_phase` names).
PASS_LABELS = {
    "source_pretrain": "source pretraining",
    "pretrain": "pretraining",
    "autoencoder": "autoencoder pretraining",
    "feature_extraction": "phase 1 (feature extraction)",
    "fine_tune": "phase 2 (fine-tuning)",
    "semi_supervised": "phase 3 (semi-supervised)",
    "scratch": "training from scratch",
    "distill": "distillation",
    "multitask": "joint multi-task phase",
}

# The metrics a progress line shows (all of them are in the history, the CSV
# log and TensorBoard).
SHOWN = ("loss", "accuracy", "f1", "mask_rate", "pseudo_label_accuracy")


def label_of(phase_name):
    if phase_name.startswith("semi_supervised_"):  # Self-training's rounds.
        return f"phase 3 (self-training, round {phase_name.rsplit('_', 1)[1]})"
    return PASS_LABELS.get(phase_name, f"phase {phase_name}")


def _shown(logs, prefix=""):
    return {f"{prefix}{name}": float(np.asarray(logs[name]))
            for name in SHOWN if logs and name in logs}


class EpochProgress(keras.callbacks.Callback):
    """A `log.Progress` for each epoch's training and validation passes."""

    def __init__(self, label, *, epochs, steps, validation_steps, verbose):
        super().__init__()
        self.label, self.epochs, self.steps = label, epochs, steps
        self.validation_steps, self.verbose = validation_steps, verbose
        self._epoch_label = label
        self._train = self._validation = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_label = f"{self.label}, epoch {epoch + 1}/{self.epochs}"
        self._train = log.Progress(self._epoch_label, self.steps, "step", self.verbose)

    def on_train_batch_end(self, batch, logs=None):
        self._train.update(batch + 1, lambda: _shown(logs))

    def on_test_begin(self, logs=None):
        # Validation is a pass of its own (the bar of a terminal would
        # otherwise mix its steps into the epoch's).
        self._validation = log.Progress(f"{self._epoch_label}, validation",
                                        self.validation_steps, "step",
                                        2 if self.verbose else 0, announce_end=False)

    def on_test_batch_end(self, batch, logs=None):
        self._validation.update(batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        values = _shown(logs)
        values.update({f"val_{k}": v for k, v in _shown(
            {k[4:]: v for k, v in (logs or {}).items() if k.startswith("val_")}).items()})
        self._train.finish(values)
