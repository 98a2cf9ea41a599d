"""`--semi_supervised`'s input: every step a labelled batch, as in every
other phase, and a batch of `--unlabeled_ratio` times as many unlabelled
images, each in two views: weak (a shift, and the flip `--augment` allows)
and strong (the weak view, then Keras' `RandAugment` and `RandomErasing`).

`fit` cannot take two streams of different sizes (keras #3430); here they
are zipped into one dataset whose length is the labelled stream's, so an
epoch is still defined by the labelled images and `--min_steps_per_epoch`,
while the unlabelled stream runs on, reshuffled each pass, across epochs.
Each element is ((labelled, weak, strong), (labels, pool labels)); a pool
label is [one-hot | known], known only where the pool's labels are (`rest`:
hidden from training, read by the pseudo-label accuracy alone).
"""

import keras
import numpy as np
import tensorflow as tf

from keras_transfer.data import pipeline

AUTOTUNE = tf.data.AUTOTUNE
# The weak view's shift, a share of the side (FixMatch's 12.5 %).
WEAK_SHIFT = 0.125


def views(augment, seed):
    """(weak, strong): Keras layer stacks on 0-255 RGB batches. No flip unless
    `--augment` has one: a flip changes a character."""
    weak = [keras.layers.RandomTranslation(WEAK_SHIFT, WEAK_SHIFT, fill_mode="constant",
                                           seed=seed)]
    if "flip" in augment:
        weak.append(keras.layers.RandomFlip("horizontal", seed=seed))
    strong = [keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.5,
                                       seed=seed + 1),
              keras.layers.RandomErasing(value_range=(0, 255), seed=seed + 2)]
    return keras.Sequential(weak, name="weak_view"), keras.Sequential(strong,
                                                                       name="strong_view")


def pool_targets(pool, num_classes, known):
    """[one-hot | known] rows of the pool's images; zeros where the labels
    are not known (a folder's images have none)."""
    rows = np.zeros((len(pool), num_classes + 1), np.float32)
    if known:
        rows[np.arange(len(pool)), pool.labels] = 1.0
        rows[:, num_classes] = 1.0
    return rows


def unlabelled_batches(pool, *, num_classes, known, image_size, batch_size, seed, augment):
    """An endless dataset of ((weak, strong), pool targets) batches."""
    weak, strong = views(augment, seed)
    dataset = pipeline.rgb_dataset(pool, image_size, shuffle_seed=seed,
                                   labels=pool_targets(pool, num_classes, known))
    dataset = dataset.repeat().batch(batch_size, drop_remainder=True)

    def two_views(images, targets):
        weakly = weak(images, training=True)
        return (weakly, strong(weakly, training=True)), targets

    return dataset.map(two_views, num_parallel_calls=AUTOTUNE)


def two_streams(labelled, unlabelled):
    """The labelled `(x, y)` batches zipped with the unlabelled ones, of the
    labelled stream's length."""
    joined = tf.data.Dataset.zip((labelled, unlabelled)).map(
        lambda pair, views_and_targets: (
            (pair[0], *views_and_targets[0]), (pair[1], views_and_targets[1])),
        num_parallel_calls=AUTOTUNE)
    return pipeline.with_data_sharding(joined.prefetch(AUTOTUNE))
