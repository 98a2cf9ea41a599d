"""Training a whole classifier from random initialisation: `--phase=pretrain`,
the source task behind `--weights=source`, and the `--baseline`."""

import contextlib
import os
import shutil

from keras_transfer import model as model_lib
from keras_transfer import outputs, pipeline, train

BASE_WEIGHTS_FILE = "base.weights.h5"


def datasets_for(data, config, image_size, global_batch):
    """(train, validation, test) `tf.data` pipelines of a `LabelledData`."""
    common = dict(num_classes=data.num_classes, batch_size=global_batch,
                  image_size=image_size, channels=data.channels)
    return (
        pipeline.make_dataset(data.train, training=True, seed=config.seed,
                              augment=config.augment, min_steps=config.min_steps_per_epoch,
                              **common),
        pipeline.make_dataset(data.validation, **common),
        pipeline.make_dataset(data.test, **common),
    )


def train_from_scratch(name, data, *, config, strategy, image_size, global_batch,
                       epochs, learning_rate, output_dir, class_weight=None,
                       backup_root=None, writes=True, base_layer="top"):
    """Builds a randomly initialised classifier (its base cut at
    `base_layer`) and trains all of it.

    The base runs in training mode here: from scratch, BatchNormalization
    has to learn its statistics.
    """
    with strategy.scope():
        classifier = model_lib.build_classifier(
            config.backbone, data.num_classes, image_size=image_size,
            channels=data.channels, dropout=config.dropout, l2=config.l2,
            base_in_inference_mode=False, base_layer=base_layer,
        )
    model_lib.set_trainable_for_phase(classifier, config.backbone, "scratch")
    model_lib.set_batchnorm_momentum(classifier, model_lib.SCRATCH_BATCHNORM_MOMENTUM)
    if strategy.num_replicas_in_sync > 1:
        model_lib.synchronize_batchnorm(classifier)
    train_data, validation_data, _ = datasets_for(data, config, image_size, global_batch)
    result = train.run_phase(
        classifier, name, train_data=train_data, validation_data=validation_data,
        epochs=epochs, learning_rate=learning_rate, strategy=strategy, config=config,
        class_names=data.class_names, output_dir=output_dir, class_weight=class_weight,
        backup_root=backup_root, writes=writes,
    )
    return classifier, result


def save_base_weights(classifier, path):
    """Saves the base's weights (what `--weights=PATH` loads), atomically."""
    outputs.save_weights_atomically(model_lib.base_of(classifier), path)


def pretrain_source_base(source_data, path, *, config, strategy, image_size, global_batch,
                         writes=True, scratch=None):
    """Pretrains on the source task and caches the base at `path`; returns the
    phase result, or None when another run cached it meanwhile.

    The work folder belongs to the cache entry, not to the process: a run
    killed while pretraining leaves its per-epoch backup there, and the next
    run with the same settings continues from it. A lock keeps two runs from
    training the same entry at once (the second waits, then finds the
    weights). On a multi-worker cluster only the chief locks and writes; the
    other workers train with it (`writes` False) into their `scratch` folder.
    """
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    work = os.path.join(folder, ".work")
    with (outputs.locked(os.path.join(folder, ".lock")) if writes else contextlib.nullcontext()):
        if writes and os.path.isfile(path):
            return None
        classifier, result = train_from_scratch(
            "source_pretrain", source_data, config=config, strategy=strategy,
            image_size=image_size, global_batch=global_batch,
            epochs=config.pretrain_epochs, learning_rate=config.scratch_learning_rate,
            output_dir=work if writes else scratch, backup_root=work, writes=writes,
        )
        if writes:
            save_base_weights(classifier, path)
            shutil.rmtree(work, ignore_errors=True)
    return result
