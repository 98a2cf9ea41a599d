"""`--weights=autoencoder`: the base learns by reconstructing unlabelled
images (L = E||x - dec(enc(corrupt(x)))||^2 on 0-1 pixels), then transfers
as any base does.

It runs as one phase, `autoencoder`, on the one loop: per-epoch backups and
resume, the progress lines, TensorBoard and the CSV history (the
reconstruction loss, training and validation), its best epoch by
validation loss kept.
"""

import dataclasses
import os

import keras
import numpy as np

from keras_transfer import outputs
from keras_transfer.data import reconstruction
from keras_transfer.evaluation import plots
from keras_transfer.log import logger
from keras_transfer.models import decoder
from keras_transfer.training import phase as phase_lib, scratch

PHASE = "autoencoder"
RECONSTRUCTIONS_FILE = "reconstructions.png"


def _pipelines(pool, config, image_size, global_batch):
    return reconstruction.datasets(
        pool, image_size=image_size, batch_size=global_batch, objective=config.autoencoder,
        seed=config.seed, noise_stddev=config.noise_stddev, mask_ratio=config.mask_ratio,
        validation_fraction=config.validation_fraction,
        min_steps=config.min_steps_per_epoch)


def train_autoencoder(pool, *, config, strategy, image_size, global_batch, base_layer,
                      output_dir, backup_root=None, writes=True):
    """Trains the autoencoder on `pool` (`reconstruction.Pool`).

    Returns (base, autoencoder, `PhaseResult`): `base` is the whole backbone
    base whose layers up to `base_layer` are the trained encoder.
    """
    logger.info(f"autoencoder ({config.autoencoder}) on {len(pool):,} unlabelled images: "
                + ", ".join(f"{count:,} {name}" for name, count in pool.sizes().items()))
    with strategy.scope():
        autoencoder, base = decoder.build_autoencoder(config.backbone, image_size,
                                                      base_layer)
    scratch.learn_batchnorm_statistics(autoencoder, strategy)
    training, validation = _pipelines(pool, config, image_size, global_batch)
    result = phase_lib.run_phase(
        autoencoder, PHASE, train_data=training, validation_data=validation,
        epochs=config.pretrain_epochs, learning_rate=config.scratch_learning_rate,
        strategy=strategy, config=dataclasses.replace(config, monitor="val_loss"),
        class_names=None, output_dir=output_dir, backup_root=backup_root, writes=writes,
        loss=keras.losses.MeanSquaredError())
    return base, autoencoder, result


def draw_reconstructions(autoencoder, pool, config, image_size, path, count=8):
    """A PNG of held-out images: what the encoder saw (corrupted), what the
    decoder made of it, and the original."""
    _, validation = _pipelines(pool, config, image_size, count)
    batch = next(iter(validation))
    shown, target = np.asarray(batch[0]) / 255.0, np.asarray(batch[1])
    rebuilt = np.asarray(autoencoder.predict_on_batch(batch[0]))
    plots.image_rows([("input", shown), ("reconstruction", rebuilt), ("original", target)],
                     path, f"{config.model} autoencoder ({config.autoencoder}), held-out "
                     "images")


def copy_reconstructions(base_path, output_dir):
    """Copies the reconstructions kept beside the cached base at `base_path`
    into the run's folder; returns the file name (None when there are none)."""
    kept = os.path.join(os.path.dirname(base_path), RECONSTRUCTIONS_FILE)
    if not os.path.isfile(kept):
        return None
    outputs.copy_atomically(kept, os.path.join(output_dir, RECONSTRUCTIONS_FILE))
    return RECONSTRUCTIONS_FILE
