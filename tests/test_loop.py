"""The training loop against `model.fit`, and a phase resumed from its
backup against one that never stopped."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transfer.training import backup as backup_lib
from keras_transfer.training import callbacks as callbacks_lib
from keras_transfer.training import loop
from keras_transfer.training import phase as train


def _data(shuffled=False):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 48)
    images = rng.normal(size=(48, 8, 8, 3)).astype("float32") + labels[:, None, None, None]
    one_hot = np.eye(3, dtype="float32")[labels]
    dataset = tf.data.Dataset.from_tensor_slices((images, one_hot))
    if shuffled:  # As the training pipeline shuffles: seeded, anew each epoch.
        dataset = dataset.shuffle(48, seed=3, reshuffle_each_iteration=True)
    return dataset.batch(8)


def _model(dropout=0.3, learning_rate=0.01):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
        keras.layers.BatchNormalization(), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(3, activation="softmax", kernel_regularizer="l2")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                           callbacks_lib.ConfusionMatrixF1(3)])
    return model


def _same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


@pytest.mark.parametrize("steps_per_execution", [1, 4])
def test_loop_trains_exactly_as_fit(steps_per_execution):
    """Dropout, L2, label smoothing and class weights included: the same
    weights and the same history, bit for bit."""
    data, weights = _data(), {0: 1.0, 1: 2.0, 2: 0.5}
    fitted = _model()
    # shuffle=False: a tf.data input is never shuffled by fit (it warns if asked).
    expected = fitted.fit(data, validation_data=data, epochs=3, class_weight=weights,
                          shuffle=False, verbose=0).history
    looped = _model()
    history = loop.Loop(looped, tf.distribute.get_strategy(),
                        steps_per_execution=steps_per_execution).fit(
        data, validation_data=data, epochs=3, class_weight=weights)
    assert _same_weights(fitted, looped)
    assert {key: list(values) for key, values in history.items()} == {
        key: [float(v) for v in values] for key, values in expected.items()}


class _Crash(Exception):
    pass


class _CrashAfter(keras.callbacks.Callback):
    """Dies at the end of an epoch, after the backup (as a kill would)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise _Crash()


def _phase(model, folder, epochs, tmp_path, crash_after=None, shuffled=False):
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "best.weights.h5"), save_best_only=True, save_weights_only=True)
    stopping = keras.callbacks.EarlyStopping(patience=50)
    backup = backup_lib.PhaseBackup(str(folder), watched=[checkpoint, stopping])
    crash = [_CrashAfter(crash_after)] if crash_after else []
    history = loop.Loop(model, tf.distribute.get_strategy()).fit(
        _data(shuffled), validation_data=_data(), epochs=epochs,
        callbacks=[checkpoint, stopping, backup, *crash], resume=backup.restore)
    return history, checkpoint, stopping, backup


@pytest.mark.parametrize("schedule, crash_after", [("constant", 2), ("cosine", 2),
                                                   ("cosine", 1), ("cosine", 3)])
def test_a_resumed_phase_ends_as_one_that_never_stopped(tmp_path, schedule, crash_after):
    """Killed after epoch N of 4 (the process gone: a new model object, all
    state from the backup files), the phase ends with the weights, optimizer
    state, history and best-so-far of an uninterrupted one, bit for bit: the
    batches of the resumed epochs come in the order they would have (the
    shuffle goes on from where it stopped), dropout draws the masks it would
    have, and a decaying learning rate continues its curve."""
    steps = 4 * int(_data().cardinality())

    def model():
        keras.utils.set_random_seed(0)  # A new process starts from the seed.
        return _model(dropout=0.3, learning_rate=train.learning_rate_schedule(
            schedule, 0.01, steps))

    whole = model()
    expected, checkpoint, stopping, _ = _phase(whole, tmp_path / "whole", 4, tmp_path,
                                               shuffled=True)

    with pytest.raises(_Crash):
        _phase(model(), tmp_path / "killed", 4, tmp_path, crash_after=crash_after,
               shuffled=True)
    assert backup_lib.read_state(str(tmp_path / "killed"))["epoch"] == crash_after
    resumed = model()
    history, checkpoint2, stopping2, backup = _phase(resumed, tmp_path / "killed", 4, tmp_path,
                                                     shuffled=True)

    assert backup.resumed_from == crash_after
    assert _same_weights(whole, resumed)
    assert all(np.array_equal(x, y) for x, y in zip(
        whole.optimizer.variables, resumed.optimizer.variables))
    assert history == {key: list(values) for key, values in expected.items()}
    assert checkpoint2.best == checkpoint.best
    assert (stopping2.best, stopping2.wait) == (stopping.best, stopping.wait)
    assert sorted(os.listdir(tmp_path / "killed")) == ["epoch-4.weights.h5", "state.json"]


def test_cosine_schedule_falls_from_the_peak_to_zero_over_the_phase():
    rate = train.learning_rate_schedule("cosine", 1e-4, 80)
    values = [float(rate(step)) for step in range(81)]
    assert values[0] == pytest.approx(1e-4)
    assert values[40] == pytest.approx(5e-5)
    assert values[80] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(values, values[1:]))
    assert train.learning_rate_schedule("constant", 1e-4, 80) == 1e-4
    with pytest.raises(ValueError, match="schedule='linear'"):
        train.learning_rate_schedule("linear", 1e-4, 80)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_a_warm_up_rises_from_zero_then_follows_the_schedule(schedule):
    """`--semi_supervised_warmup_epochs`: 0 at the first step, the peak after
    the warm-up, then the schedule over the steps left."""
    rate = train.learning_rate_schedule(schedule, 1e-4, 80, warmup_steps=20)
    values = [float(rate(step)) for step in range(81)]
    assert values[0] == 0.0 and values[10] == pytest.approx(5e-5)
    assert all(a < b for a, b in zip(values[:20], values[1:21]))
    assert values[20] == pytest.approx(1e-4)
    if schedule == "cosine":  # Half-way down over the 60 steps left.
        assert values[50] == pytest.approx(5e-5) and values[80] == pytest.approx(0, abs=1e-12)
    else:
        assert values[20:] == pytest.approx([1e-4] * 61)


def test_a_finished_phase_restores_without_training(tmp_path):
    model = _model()
    _phase(model, tmp_path / "done", 2, tmp_path)
    again = _model()
    history, *_ = _phase(again, tmp_path / "done", 2, tmp_path)
    assert len(history["loss"]) == 2
    assert _same_weights(model, again)


def test_xla_compiled_steps_train_as_the_plain_ones():
    """To rounding: the losses, and the trained model's outputs. (Not every
    weight: the convolution bias before BatchNormalization gets a gradient of
    rounding noise, which Adam scales up to full steps.)"""
    data = _data()
    plain, compiled = _model(dropout=0.0), _model(dropout=0.0)
    expected = loop.Loop(plain, tf.distribute.get_strategy()).fit(data, epochs=2)
    history = loop.Loop(compiled, tf.distribute.get_strategy(), jit_compile=True).fit(
        data, epochs=2)
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-4)
    images = np.concatenate([batch[0] for batch in data.as_numpy_iterator()])
    np.testing.assert_allclose(compiled.predict(images, verbose=0),
                               plain.predict(images, verbose=0), atol=5e-3)


def test_progress_lines_name_their_pass_and_come_at_least_every_interval(console, monkeypatch):
    """Under --verbose=2 (output not a terminal) a long epoch prints while it
    runs, not only when it ends; every line says which pass it is."""
    from keras_transfer import log

    # Every step is "long": each one is due a line.
    monkeypatch.setattr(log, "PROGRESS_EVERY_SECONDS", 0.0)
    loop.Loop(_model(), tf.distribute.get_strategy()).fit(
        _data(), validation_data=_data(), epochs=2, verbose=2,
        label="phase 2 (fine-tuning)")
    lines = console.readouterr().out.splitlines()
    assert lines and all(line.startswith("[keras_transfer] phase 2 (fine-tuning), epoch ")
                         for line in lines), lines
    # 6 training steps an epoch: a line at steps 1-6 while it runs (with the
    # time left), one when it ends; the validation pass's steps in between.
    running = [line for line in lines if "epoch 1/2: step " in line]
    assert [line.split("step ")[1].split(" ")[0] for line in running] == [
        f"{step}/6" for step in range(1, 7)]
    assert "s left, loss " in running[0]
    assert any("epoch 1/2, validation: step 6/6" in line for line in lines)
    ends = [line for line in lines if ": 6 steps in " in line]
    assert [line.split(",")[1].split(":")[0].strip() for line in ends] == ["epoch 1/2",
                                                                          "epoch 2/2"]
    assert all("val_accuracy" in line for line in ends)


def test_progress_waits_for_the_interval(console):
    """At the default interval a short epoch prints one line, when it ends."""
    loop.Loop(_model(), tf.distribute.get_strategy()).fit(
        _data(), validation_data=_data(), epochs=2, verbose=2, label="baseline from scratch")
    lines = console.readouterr().out.splitlines()
    assert len(lines) == 2 and all(": 6 steps in " in line for line in lines), lines
