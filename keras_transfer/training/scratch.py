"""Training a whole classifier from random initialisation: `--phase=pretrain`,
the source task behind `--weights=source` (`source.py`), and the `--baseline`."""

from keras_transfer import outputs
from keras_transfer.data import pipeline
from keras_transfer.models import classifier as model_lib
from keras_transfer.training import phase as phase_lib, semi_supervised as semi_supervised_lib

BASE_WEIGHTS_FILE = "base.weights.h5"


def train_from_scratch(name, data, *, config, strategy, image_size, global_batch,
                       epochs, learning_rate, output_dir, class_weight=None,
                       backup_root=None, writes=True, base_layer="top",
                       semi_supervised=False):
    """Builds a randomly initialised classifier (its base cut at
    `base_layer`) and trains all of it; with `semi_supervised`, on the
    run's unlabelled images too where `--semi_supervised` asks for them.

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
    learn_batchnorm_statistics(classifier, strategy)
    train_data, validation_data = pipeline.training_datasets(data, config, image_size,
                                                             global_batch)
    unlabelled = semi_supervised_lib.fit_inputs(
        classifier, data, config, strategy=strategy, image_size=image_size,
        global_batch=global_batch) if semi_supervised else {}
    result = phase_lib.run_phase(
        classifier, name, **{"train_data": train_data, **unlabelled},
        validation_data=validation_data,
        epochs=epochs, learning_rate=learning_rate, strategy=strategy, config=config,
        class_names=data.class_names, output_dir=output_dir, class_weight=class_weight,
        backup_root=backup_root, writes=writes,
    )
    return classifier, result


def learn_batchnorm_statistics(classifier, strategy):
    """BatchNormalization of a randomly initialised network: a momentum its
    moving statistics keep up with in a short run, synchronised across
    replicas."""
    model_lib.set_batchnorm_momentum(classifier, model_lib.SCRATCH_BATCHNORM_MOMENTUM)
    if strategy.num_replicas_in_sync > 1:
        model_lib.synchronize_batchnorm(classifier)


def save_base_weights(classifier, path):
    """Saves the base's weights (what `--weights=PATH` loads), atomically."""
    outputs.save_weights_atomically(model_lib.base_of(classifier), path)
