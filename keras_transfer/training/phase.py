"""Training phases: per-phase compile (inside the strategy scope), callbacks,
and the best epoch kept."""

import dataclasses
import math
import os
from typing import Optional

import keras
import numpy as np

from keras_transfer import outputs
from keras_transfer.evaluation import metrics as evaluate
from keras_transfer.log import logger
from keras_transfer.training import (backup as backup_lib, callbacks as callbacks_lib,
                                     loop as loop_lib, progress)


@dataclasses.dataclass(frozen=True)
class PhaseResult:
    """What one phase did: its per-epoch history, best epoch and time."""

    name: str
    history: dict
    epochs_run: int
    best_epoch: Optional[int]
    best_val_loss: Optional[float]
    seconds: float
    first_epoch: int
    learning_rate: float  # The peak, where `schedule` is not constant.
    checkpoint: str
    schedule: str = "constant"
    monitor: str = "val_loss"
    best_value: Optional[float] = None  # The monitor at the best epoch.
    # At the best epoch (every epoch's is in TensorBoard): rows true, columns
    # predicted.
    validation_confusion_matrix: Optional[list] = None
    # Test summaries before and after the phase (added by training/transfer.py):
    # a phase that made the test numbers worse is flagged in the report.
    test_before: Optional[dict] = None
    test: Optional[dict] = None
    # Set when the phase continued a backup of a killed run: how many of its
    # epochs were done then.
    resumed_from_epoch: Optional[int] = None

    def to_dict(self):
        return dataclasses.asdict(self)


def make_metrics(num_classes):
    """The compiled metrics; the last one streams the confusion matrix."""
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    k = evaluate.top_k_for(num_classes)
    if k:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=k, name="top_k"))
    metrics += [
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
        keras.metrics.AUC(name="auc"),
        # Macro F1 of the arg-max class, and the matrix the callback logs.
        callbacks_lib.ConfusionMatrixF1(num_classes, name="f1"),
    ]
    return metrics


def compile_classifier(model, strategy, learning_rate, config, num_classes, loss=None):
    """(Re-)compiles inside the strategy scope so optimizer slots and metric
    variables are created as distributed variables. Returns the metrics.
    `loss`: in place of the cross-entropy (distillation's)."""
    with strategy.scope():
        metrics = make_metrics(num_classes)
        # Distillation weighs its metrics by which images have a label
        # (`DistillingStudent.compute_metrics`): Keras applies sample weights
        # to `weighted_metrics` only.
        which = "weighted_metrics" if loss is not None else "metrics"
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=loss or keras.losses.CategoricalCrossentropy(
                label_smoothing=config.label_smoothing
            ),
            **{which: metrics},
            jit_compile=config.jit_compile,
        )
    return metrics


def learning_rate_schedule(schedule, learning_rate, total_steps, warmup_steps=0):
    """What `keras.optimizers.Adam` gets as its learning rate for a phase.

    "cosine" decays from `learning_rate` to 0 along a half cosine over the
    phase's `total_steps`, the common fine-tuning recipe: the last epochs
    take small steps instead of bouncing around the minimum at the full
    rate, so the phase's end depends less on where its last batch left it.
    On the embedded digits (ResNet50, four seeds) it matched a constant rate
    on the mean test accuracy (README, "Measured here"). It is a function of
    the optimizer's step counter, which the per-epoch backup saves, so a
    resumed phase continues the same curve.

    `warmup_steps` first rise linearly from 0 to `learning_rate` (the rest
    of `total_steps` then follow `schedule`): for a phase that goes on
    training a network already trained, whose fresh Adam would otherwise
    take full-rate steps before its moments know the gradients' scale.
    """
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be cosine or constant. Received: "
                         f"schedule={schedule!r}")
    if not warmup_steps:
        if schedule == "constant":
            return learning_rate
        return keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps))
    # alpha=1 holds the rate at its target after the warm-up: constant.
    return keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total_steps - warmup_steps), alpha=1.0 if schedule == "constant" else 0.0,
        warmup_target=learning_rate, warmup_steps=warmup_steps)


def checkpoint_path(output_dir, name, fit_model=None):
    """Where phase `name` keeps its best epoch's weights: the classifier's,
    or with `fit_model` that model's (every head of a multi-task model)."""
    suffix = f".{fit_model.name}" if fit_model is not None else ""
    return os.path.join(output_dir, "checkpoints", f"{name}{suffix}.weights.h5")


def _callbacks(output_dir, name, config, confusion_metric, class_names, checkpoint,
               resuming):
    os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
    if os.path.exists(checkpoint) and not resuming:
        # A stale best of an earlier run must never stand in for this one's
        # (a resumed phase keeps its own best so far).
        os.remove(checkpoint)
    mode = callbacks_lib.monitor_mode(config.monitor)
    log_dir = os.path.join(output_dir, "tensorboard", name)
    report = None if class_names is None else callbacks_lib.ValidationReport(
        confusion_metric, class_names, os.path.join(log_dir, "validation_classes"))
    callbacks = [
        *([report] if report else []),
        callbacks_lib.AtomicModelCheckpoint(
            checkpoint, monitor=config.monitor, mode=mode, save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.TensorBoard(log_dir),
        keras.callbacks.CSVLogger(os.path.join(output_dir, f"history_{name}.csv"),
                                  append=resuming),  # PhaseBackup trims it on resume.
    ]
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=config.monitor, mode=mode,
                patience=config.early_stopping_patience,
            )
        )
    return checkpoint, report, callbacks


def best_epoch_index(values, monitor):
    """Index of the best finite value of `monitor`, or None if none is finite
    (a diverged phase: every epoch NaN)."""
    finite = [i for i, value in enumerate(values) if math.isfinite(value)]
    if not finite:
        return None
    pick = min if callbacks_lib.monitor_mode(monitor) == "min" else max
    return pick(finite, key=values.__getitem__)


def run_phase(model, name, *, train_data, validation_data, epochs, learning_rate,
              strategy, config, class_names, output_dir, class_weight=None,
              first_epoch=0, fit_model=None, backup_root=None, writes=True,
              schedule="constant", warmup_epochs=0, loss=None, steps_per_execution=None):
    """Compiles and fits `model` for one phase, then restores its best epoch
    (by `config.monitor`). `schedule` shapes the learning rate over the
    phase (`learning_rate_schedule`), after `warmup_epochs` of a rise from 0.

    `class_names` None: the model is no classifier (an autoencoder), and
    trains on `loss` alone, kept by `config.monitor` (val_loss).

    `first_epoch` continues the epoch count of an earlier phase so that both
    phases share one time axis in TensorBoard. `fit_model`, when given, shares
    the layers of `model` that train and is fitted in its place (the head on
    recorded features: `feature_cache`); the phase's checkpoint still holds
    all of `model`'s weights. `loss` replaces the cross-entropy (compiled
    into the fitted model); `steps_per_execution` defaults to one step a
    call, a whole epoch for a head on recorded features.

    Every epoch is backed up to `<backup_root>/backup/<name>` (default root:
    `output_dir`); a phase that finds a backup there continues from it.
    `writes` is False on multi-worker workers other than the chief: their
    `output_dir` is a scratch folder, and they read the chief's backups
    (`backup_root`, the chief's folder) without writing them.
    """
    fitted = fit_model or model
    # Known: the loop refuses data of unknown length before the first step.
    steps_per_epoch = int(train_data.cardinality())
    warmup_epochs = min(warmup_epochs, epochs)  # A phase shorter than its warm-up.
    rate = learning_rate_schedule(schedule, learning_rate, steps_per_epoch * epochs,
                                  warmup_steps=steps_per_epoch * warmup_epochs)
    if class_names is None:  # No classes: an autoencoder, its `loss` alone.
        with strategy.scope():
            fitted.compile(optimizer=keras.optimizers.Adam(rate), loss=loss,
                           jit_compile=config.jit_compile)
        metrics = None
    else:
        metrics = compile_classifier(fitted, strategy, rate, config, len(class_names), loss)
    backup_dir = os.path.join(backup_root or output_dir, "backup", name)
    resuming = backup_lib.read_state(backup_dir) is not None
    checkpoint = checkpoint_path(output_dir, name)
    fit_checkpoint = checkpoint if fitted is model else checkpoint_path(output_dir, name,
                                                                        fitted)
    _, report, callbacks = _callbacks(output_dir, name, config, metrics and metrics[-1],
                                      class_names, fit_checkpoint, resuming)
    backup = backup_lib.PhaseBackup(
        backup_dir, first_epoch=first_epoch, writes=writes, report=report,
        watched=[c for c in callbacks if backup_lib.resumable(c)],
        csv_path=os.path.join(output_dir, f"history_{name}.csv"))
    curve = [f"{warmup_epochs} warm-up epoch(s) from 0"] if warmup_epochs else []
    curve += [] if schedule == "constant" else [f"{schedule} decay to 0"]
    described = f" ({', '.join(curve)})" if curve else ""
    logger.info(f"{progress.label_of(name)}: {epochs} epoch(s) at learning rate "
                f"{learning_rate:g}{described}, "
                f"{model.count_params() - _frozen(model):,} trainable parameters, "
                f"best epoch by {config.monitor}")
    # A head on recorded features takes microseconds a step: run a whole
    # epoch per call so Python's per-step overhead does not dominate.
    if steps_per_execution is None:
        steps_per_execution = 1 if fitted is model else max(1, steps_per_epoch)
    loop = loop_lib.Loop(fitted, strategy, steps_per_execution=steps_per_execution,
                         jit_compile=config.jit_compile)
    history = loop.fit(
        train_data,
        validation_data=validation_data,
        epochs=first_epoch + epochs,
        initial_epoch=first_epoch,
        callbacks=[*callbacks, backup],  # The backup last: it saves the others' state.
        class_weight=class_weight,
        verbose=config.verbose,
        resume=backup.restore,
        label=progress.label_of(name),
    )
    if backup.resumed_from is not None:
        logger.info(f"phase {name} resumed after epoch {backup.resumed_from} from the "
                    f"backup of the interrupted run in {backup_dir}")
    seconds = backup.seconds()
    values = [float(v) for v in history[config.monitor]]
    best = best_epoch_index(values, config.monitor)
    if best is not None and os.path.exists(fit_checkpoint):
        fitted.load_weights(fit_checkpoint)
    if fitted is not model:
        # The head's own best stays beside it: a resumed run that finds this
        # phase finished restores its best epoch from there.
        outputs.save_weights_atomically(model, checkpoint)
    # else: no epoch had a finite monitor, so no checkpoint was written; the
    # weights stay as they ended and best_value None marks the phase diverged.
    return PhaseResult(
        name=name,
        history={key: [_finite_or_none(v) for v in values]
                 for key, values in sorted(history.items())},
        epochs_run=len(values),
        best_epoch=None if best is None else first_epoch + best + 1,
        best_val_loss=None if best is None else _finite_or_none(
            history["val_loss"][best]),
        seconds=round(seconds, 2),
        first_epoch=first_epoch,
        learning_rate=learning_rate,
        schedule=schedule,
        checkpoint=checkpoint,
        monitor=config.monitor,
        best_value=None if best is None else values[best],
        validation_confusion_matrix=None if best is None or report is None else (
            report.matrices[best]),
        resumed_from_epoch=backup.resumed_from,
    )


def _finite_or_none(value):
    """JSON has no NaN: a diverged epoch's loss is recorded as null."""
    value = float(value)
    return value if np.isfinite(value) else None


def _frozen(model):
    return sum(int(keras.ops.size(w)) for w in model.non_trainable_weights)
