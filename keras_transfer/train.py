"""Training phases: per-phase compile (inside the strategy scope), callbacks,
and the best epoch kept."""

import dataclasses
import math
import os
import time

import keras


@dataclasses.dataclass
class PhaseResult:
    """What one phase did: its per-epoch history, best epoch and time."""

    name: str
    history: dict
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    seconds: float
    first_epoch: int
    learning_rate: float
    checkpoint: str

    def to_dict(self):
        return dataclasses.asdict(self)


def top_k_for(num_classes):
    """k for the top-k metric: only meaningful well below the class count."""
    if num_classes > 10:
        return 5
    return 2 if num_classes > 3 else None


def make_metrics(num_classes):
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    k = top_k_for(num_classes)
    if k:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=k, name="top_k"))
    metrics += [
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
        # threshold=None: the arg-max class counts as predicted.
        keras.metrics.F1Score(average="macro", threshold=None, name="f1"),
        keras.metrics.AUC(name="auc"),
    ]
    return metrics


def compile_classifier(model, strategy, learning_rate, config, num_classes):
    """(Re-)compiles inside the strategy scope so optimizer slots and metric
    variables are created as distributed variables."""
    with strategy.scope():
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.CategoricalCrossentropy(
                label_smoothing=config.label_smoothing
            ),
            metrics=make_metrics(num_classes),
            jit_compile=config.jit_compile,
        )


def _callbacks(output_dir, name, config):
    checkpoint = os.path.join(output_dir, "checkpoints", f"{name}.weights.h5")
    os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            checkpoint, monitor="val_loss", save_best_only=True, save_weights_only=True
        ),
        keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard", name)),
        keras.callbacks.CSVLogger(os.path.join(output_dir, f"history_{name}.csv")),
    ]
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.early_stopping_patience
            )
        )
    return checkpoint, callbacks


def run_phase(model, name, *, train_data, validation_data, epochs, learning_rate,
              strategy, config, num_classes, output_dir, class_weight=None,
              first_epoch=0):
    """Compiles and fits `model` for one phase, then restores its best epoch.

    `first_epoch` continues the epoch count of an earlier phase so that both
    phases share one time axis in TensorBoard.
    """
    compile_classifier(model, strategy, learning_rate, config, num_classes)
    checkpoint, callbacks = _callbacks(output_dir, name, config)
    print(f"[keras_transfer] phase {name}: {epochs} epoch(s) at learning rate "
          f"{learning_rate:g}, {model.count_params() - _frozen(model):,} trainable "
          "parameters", flush=True)
    start = time.time()
    history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=first_epoch + epochs,
        initial_epoch=first_epoch,
        callbacks=callbacks,
        class_weight=class_weight,
        shuffle=False,  # The pipeline shuffles, seeded.
        verbose=config.verbose,
    )
    seconds = time.time() - start
    losses = history.history["val_loss"]
    best = min(range(len(losses)), key=lambda epoch: _finite_or_inf(losses[epoch]))
    if os.path.isfile(checkpoint):
        model.load_weights(checkpoint)
    else:  # Every epoch's validation loss was NaN: nothing better to restore.
        print(f"[keras_transfer] warning: phase {name} never improved its validation "
              "loss (NaN); keeping its last weights", flush=True)
    return PhaseResult(
        name=name,
        history={key: [float(v) for v in values] for key, values in history.history.items()},
        epochs_run=len(losses),
        best_epoch=first_epoch + best + 1,
        best_val_loss=float(losses[best]),
        seconds=round(seconds, 2),
        first_epoch=first_epoch,
        learning_rate=learning_rate,
        checkpoint=checkpoint,
    )


def _finite_or_inf(value):
    return value if math.isfinite(value) else math.inf


def _frozen(model):
    return sum(int(keras.ops.size(w)) for w in model.non_trainable_weights)
