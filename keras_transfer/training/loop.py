"""The one training loop, for every `tf.distribute` strategy.

Keras 3's `model.fit` fails under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585: an eager `strategy.reduce` of the first batch while it
builds the model). The step itself is sound: `model.train_step` and
`model.test_step` run inside `strategy.run` in a `tf.function` on one device,
on mirrored devices and across workers alike. So this loop keeps everything
of Keras that a run relies on -- the compiled loss (regularisation, label
smoothing, loss scaling), optimizer, metrics and the callbacks with their
usual hooks -- and replaces only `fit`'s driver: epochs, steps, validation.

Two things fit cannot do come for free here: several steps per call
(`steps_per_execution`, for a head on recorded features, where Python's
per-step overhead would dominate) and a resume hook that restores a phase's
state after the callbacks reset theirs.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_transfer.training import progress


def with_sample_weights(dataset, class_weight):
    """(x, one-hot y) batches -> (x, y, weight of y's class), as fit does for
    `class_weight`; unchanged when there is none."""
    if not class_weight:
        return dataset
    table = tf.constant([class_weight[i] for i in range(len(class_weight))], tf.float32)
    classes = len(class_weight)  # The one-hot label leads a wider (distillation) target.
    return dataset.map(lambda x, y: (x, y, tf.gather(table, tf.argmax(y[..., :classes],
                                                                      axis=-1))))


def build_for(model, strategy, element_spec):
    """Creates the optimizer slots and compiled metric/loss state outside the
    step, inside the strategy scope, as `fit` does before its first step:
    variables cannot be created inside `strategy.run`.

    `_symbolic_build` is what `fit` itself calls once it has a batch; given
    the dataset's element spec instead of a batch it never touches the data
    (the part that fails under multi-worker).
    """
    with strategy.scope():
        model._symbolic_build(data_batch=element_spec)  # pylint: disable=protected-access


def _steps_function(model, strategy, step, jit_compile):
    """A `tf.function` that runs `step` on `n` batches of a distributed
    iterator, then returns the metrics read in cross-replica context (summed
    over replicas and workers, so every worker sees the same numbers)."""
    replica_step = tf.function(step, jit_compile=True) if jit_compile else step

    @tf.function
    def run_steps(iterator, n):
        for _ in tf.range(n):
            strategy.run(replica_step, args=(next(iterator),))
        return model.get_metrics_result()

    return run_steps


def _to_floats(logs):
    return {name: float(np.asarray(value)) for name, value in logs.items()}


def _steps_of(dataset):
    steps = int(dataset.cardinality())
    if steps < 0:
        raise ValueError("the training loop needs datasets of known length (finite, "
                         f"no filter before batching). Received: cardinality={steps}")
    return steps


class Loop:
    """Trains and validates one compiled model under one strategy.

    Build once per compile; `fit` may then be called for any number of
    epochs. The step functions are traced on first use.
    """

    def __init__(self, model, strategy, *, steps_per_execution=1, jit_compile=False):
        if steps_per_execution < 1:
            raise ValueError("steps_per_execution must be >= 1. "
                             f"Received: steps_per_execution={steps_per_execution}")
        self.model = model
        self.strategy = strategy
        self.steps_per_execution = steps_per_execution
        self._train = _steps_function(model, strategy, model.train_step, jit_compile)
        self._test = _steps_function(model, strategy, model.test_step, jit_compile)

    def _iterator(self, dataset):
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def _run_epoch(self, function, iterator, steps, on_begin, on_end):
        logs, done = {}, 0
        while done < steps:
            n = min(self.steps_per_execution, steps - done)
            on_begin(done)
            logs = function(iterator, tf.constant(n))
            done += n
            on_end(done - 1, logs)
        return _to_floats(logs) if logs else {}

    def evaluate(self, dataset, callbacks):
        """One pass over `dataset`; returns the metrics named as fit names them."""
        self.model.reset_metrics()
        callbacks.on_test_begin()
        logs = self._run_epoch(self._test, self._iterator(dataset), _steps_of(dataset),
                               callbacks.on_test_batch_begin, callbacks.on_test_batch_end)
        # What only a training step measures (FixMatch's mask rate) would
        # read 0 here.
        for name in getattr(self.model, "TRAINING_ONLY_METRICS", ()):
            logs.pop(name, None)
        callbacks.on_test_end(logs)
        return logs

    def fit(self, train_data, *, epochs, validation_data=None, initial_epoch=0,
            callbacks=(), class_weight=None, verbose=0, resume=None, label="training"):
        """Like `model.fit`, with the same callbacks hooks and history.

        `resume`, if given, is called after the callbacks' `on_train_begin`
        (which resets their state) and returns (epoch to continue from,
        history so far) or None for a fresh start (`backup.PhaseBackup.restore`).
        `label` names the pass on the console (`progress.EpochProgress`).
        Returns the history dict: {metric: [value per epoch]}.
        """
        train_data = with_sample_weights(train_data, class_weight)
        steps = _steps_of(train_data)
        build_for(self.model, self.strategy, train_data.element_spec)
        history = keras.callbacks.History()
        shown = [progress.EpochProgress(
            label, epochs=epochs, steps=steps, verbose=verbose,
            validation_steps=None if validation_data is None else _steps_of(validation_data),
        )] if verbose else []
        callback_list = keras.callbacks.CallbackList(
            [*callbacks, history, *shown], model=self.model, epochs=epochs, steps=steps)
        self.model.stop_training = False
        callback_list.on_train_begin()
        restored = resume() if resume else None
        start, earlier = restored if restored else (initial_epoch, {})
        logs = {}
        # One iterator for all epochs, over the data repeated: the pipeline
        # (shuffle buffer, parallel map, prefetch) keeps running across epoch
        # boundaries and validation instead of starting cold every epoch,
        # which cost the first step of each epoch half a step again.
        batches = self._iterator(train_data.repeat())
        # A resumed phase goes on where the shuffle (and the augmentation's
        # random draws) stood: the batches of the epochs done before the
        # restart are drawn again and dropped, not trained on.
        for _ in range((start - initial_epoch) * steps if restored else 0):
            next(batches)
        for epoch in range(start, epochs):
            self.model.reset_metrics()
            callback_list.on_epoch_begin(epoch)
            logs = self._run_epoch(self._train, batches, steps,
                                   callback_list.on_train_batch_begin,
                                   callback_list.on_train_batch_end)
            if validation_data is not None:
                validation = self.evaluate(validation_data, callback_list)
                logs.update({f"val_{name}": value for name, value in validation.items()})
            callback_list.on_epoch_end(epoch, logs)
            if self.model.stop_training:
                break
        callback_list.on_train_end(logs)
        merged = {key: list(earlier.get(key, [])) + list(history.history.get(key, []))
                  for key in {*earlier, *history.history}}
        return merged
