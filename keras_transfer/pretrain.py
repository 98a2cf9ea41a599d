"""Training a whole classifier from random initialisation: `--phase=pretrain`,
the source task behind `--weights=source`, and the `--baseline`."""

import os
import shutil

from keras_transfer import model as model_lib
from keras_transfer import pipeline, train

BASE_WEIGHTS_FILE = "base.weights.h5"


def datasets_for(data, config, image_size, global_batch):
    """(train, validation, test) `tf.data` pipelines of a `LabelledData`."""
    common = dict(num_classes=data.num_classes, batch_size=global_batch,
                  image_size=image_size, channels=data.channels)
    return (
        pipeline.make_dataset(data.train, training=True, seed=config.seed,
                              augment=config.augment, **common),
        pipeline.make_dataset(data.validation, **common),
        pipeline.make_dataset(data.test, **common),
    )


def train_from_scratch(name, data, *, config, strategy, image_size, global_batch,
                       epochs, learning_rate, output_dir, class_weight=None):
    """Builds a randomly initialised classifier and trains all of it.

    The base runs in training mode here: from scratch, BatchNormalization
    has to learn its statistics.
    """
    with strategy.scope():
        classifier = model_lib.build_classifier(
            config.backbone, data.num_classes, image_size=image_size,
            channels=data.channels, dropout=config.dropout, l2=config.l2,
            base_in_inference_mode=False,
        )
    model_lib.set_trainable_for_phase(classifier, config.backbone, "scratch")
    model_lib.set_batchnorm_momentum(classifier, model_lib.SCRATCH_BATCHNORM_MOMENTUM)
    train_data, validation_data, _ = datasets_for(data, config, image_size, global_batch)
    result = train.run_phase(
        classifier, name, train_data=train_data, validation_data=validation_data,
        epochs=epochs, learning_rate=learning_rate, strategy=strategy, config=config,
        class_names=data.class_names, output_dir=output_dir, class_weight=class_weight,
    )
    return classifier, result


def save_base_weights(classifier, path):
    """Saves the base's weights (what `--weights=PATH` loads), atomically."""
    temporary = f"{path[:-len('.weights.h5')]}.tmp-{os.getpid()}.weights.h5"
    model_lib.base_of(classifier).save_weights(temporary)
    os.replace(temporary, path)


def pretrain_source_base(source_data, path, *, config, strategy, image_size, global_batch):
    """Pretrains on the source task and caches the base at `path`.

    Logs go to a scratch folder beside the cache entry and are removed; only
    the finished weights file (and its description) stay.
    """
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    scratch = os.path.join(folder, f".work-{os.getpid()}")
    try:
        classifier, result = train_from_scratch(
            "source_pretrain", source_data, config=config, strategy=strategy,
            image_size=image_size, global_batch=global_batch,
            epochs=config.pretrain_epochs, learning_rate=config.scratch_learning_rate,
            output_dir=scratch,
        )
        save_base_weights(classifier, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result
