"""Fine-tuning throughput: the tool's training loop against a bare step.

    python benchmarks/train_step.py [--quick] [--model=vgg16] [--image_size=64]

Both sides train the same classifier (the base unfrozen, as in phase 2) on
batches of the same size, in the same process, alternating rounds so that a
machine that slows down mid-run slows both:

- bare: a `tf.function` that runs the forward pass, the loss and
  `optimizer.apply_gradients` on one batch held in memory: no metrics, no
  callbacks, no input pipeline; the ceiling.
- tool: `loop.Loop.fit` as `train.run_phase` drives it: the compiled metrics
  (accuracy, top-k, precision, recall, AUC, the streaming confusion matrix),
  every callback of a phase (checkpoint, early stopping, TensorBoard, CSV
  history, validation report, per-epoch backup) and the `tf.data` pipeline
  decoding the embedded digits. Only the training part of each epoch is
  timed (the validation pass is a different job).

Prints images per second of each and their ratio (target: tool >= 90 % of
bare).
"""

import argparse
import os
import tempfile
import time

import keras_transfer  # noqa: F401  (turns oneDNN on before TensorFlow loads)
from table import markdown


def _bare_step(model, optimizer, loss_fn):
    import tensorflow as tf

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 px, fewer rounds")
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=6,
                        help="alternating rounds; their median is reported (noise here ~5 points)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_TRANSFER_OFFLINE"] = "1"
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_transfer import config as config_lib
    from keras_transfer.models import backbones
    from keras_transfer.data import tasks
    from keras_transfer.training import loop
    from keras_transfer.models import classifier as model_lib
    from keras_transfer.data import pipeline
    from keras_transfer.training import phase as train

    size = 32 if args.quick else args.image_size
    rounds = 2 if args.quick else args.rounds
    config = config_lib.RunConfig(model=args.model, verbose=0, early_stopping_patience=0)
    spec = backbones.get(args.model)
    data = tasks.load_task(config.dataset, ("5", "6", "7", "8", "9"), role="target",
                              seed=0, validation_fraction=0.1, test_fraction=0.2)
    strategy = tf.distribute.get_strategy()
    batch = config.batch_size

    def classifier():
        keras.utils.set_random_seed(0)
        built = model_lib.build_classifier(spec, data.num_classes, image_size=size,
                                           channels=data.channels, dropout=config.dropout)
        model_lib.set_trainable_for_phase(built, spec, "fine_tune", "all")
        return built

    common = dict(num_classes=data.num_classes, batch_size=batch, image_size=size,
                  channels=data.channels)
    train_data = pipeline.make_dataset(data.train, training=True, seed=0, **common)
    validation_data = pipeline.make_dataset(data.validation, **common)
    steps = int(train_data.cardinality())

    # The tool: a phase's compile, callbacks and backup, timing the training
    # part of each epoch only.
    tool_model = classifier()
    metrics = train.compile_classifier(tool_model, strategy, 1e-5, config, data.num_classes)
    workdir = tempfile.mkdtemp()
    _, report, callbacks = train._callbacks(  # pylint: disable=protected-access
        workdir, "fine_tune", config, metrics[-1], data.class_names,
        os.path.join(workdir, "checkpoints", "fine_tune.weights.h5"), False)
    from keras_transfer.training import backup as backup_lib

    backup = backup_lib.PhaseBackup(os.path.join(workdir, "backup", "fine_tune"),
                                    report=report)

    class TrainingTime(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_test_begin(self, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    timer = TrainingTime()
    tool_loop = loop.Loop(tool_model, strategy)

    # The bare step, same network and batch size, one batch in memory.
    bare_model = classifier()
    optimizer = keras.optimizers.Adam(1e-5)
    step = _bare_step(bare_model, optimizer, keras.losses.CategoricalCrossentropy())
    images, labels = next(iter(train_data))
    step(images, labels)  # Trace.

    tool_rates, bare_rates = [], []
    epoch = 0
    tool_loop.fit(train_data, validation_data=validation_data, epochs=1,
                  callbacks=[*callbacks, backup, timer])  # Trace.
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step(images, labels)
        np.asarray(bare_model.weights[0])  # Wait for the last step.
        bare_rates.append(steps * batch / (time.perf_counter() - start))
        epoch += 1
        tool_loop.fit(train_data, validation_data=validation_data, epochs=epoch + 1,
                      initial_epoch=epoch, callbacks=[*callbacks, backup, timer])
        tool_rates.append(len(data.train) / timer.seconds[-1])
    bare, tool = float(np.median(bare_rates)), float(np.median(tool_rates))
    print(f"\nFine-tuning {args.model} at {size} px, batch {batch}, {steps} steps an "
          f"epoch, median of {rounds} alternating rounds\n")
    print(markdown(["path", "images/s", "of bare"],
                   [["bare `tf.function` step", f"{bare:.1f}", "100%"],
                    ["tool (metrics, callbacks, tf.data)", f"{tool:.1f}",
                     f"{tool / bare:.0%}"]]))


if __name__ == "__main__":
    main()
