"""`tf.data` input pipelines: decode, resize, shuffle, batch, augment, prefetch.

Pixels stay in 0-255 here; the backbone's own preprocessing lives inside the
model, so the exported SavedModel accepts the same raw pixels.
"""

import keras
import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def decode_image(contents, channels, image_size):
    """Decodes encoded JPEG/PNG/BMP/GIF bytes to float32 pixels, resized.

    Shared by the training pipeline and the exported serving signature so a
    served image goes through exactly the transformation training used. GIFs
    give their first frame.
    """
    if channels == 1:
        image = _decode_grayscale(contents)
    else:
        image = tf.io.decode_image(
            contents, channels=channels, expand_animations=False
        )
    image.set_shape([None, None, channels])
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    return tf.cast(image, tf.float32)


def _decode_grayscale(contents):
    """One channel from any format: the BMP and GIF decoders refuse
    channels=1, so decode natively and convert."""
    image = tf.io.decode_image(contents, channels=0, expand_animations=False)
    return tf.cond(
        tf.shape(image)[-1] < 3,
        lambda: image[..., :1],  # Grayscale, or grayscale + alpha.
        lambda: tf.image.rgb_to_grayscale(image[..., :3]),
    )


def _augmenter(augment, seed):
    """A Keras layer stack for the requested augmentations, or None."""
    steps = []
    if "flip" in augment:
        steps.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if "rotation" in augment:
        steps.append(keras.layers.RandomRotation(0.08, fill_mode="constant", seed=seed))
    if "zoom" in augment:
        steps.append(keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed))
    return keras.Sequential(steps, name="augment") if steps else None


def passes_per_epoch(examples, batch_size, min_steps):
    """The fewest shuffled passes over a training split that make an epoch
    of at least `min_steps` batches (the last one may be partial). A
    few-label split is one or two batches: one pass an epoch would make
    `--epochs` count a handful of steps (and validations), so such splits
    are repeated, reshuffled each pass, within an epoch; a split of
    `min_steps` batches or more is one pass."""
    # p passes are ceil(p * examples / batch_size) batches: >= min_steps
    # exactly when p * examples > (min_steps - 1) * batch_size.
    return (max(0, min_steps - 1) * batch_size) // max(1, examples) + 1


def make_dataset(examples, *, num_classes, batch_size, image_size, channels,
                 training=False, seed=0, augment=(), min_steps=1, exact=False,
                 targets=None):
    """Returns a batched `tf.data.Dataset` of (float32 pixels, one-hot labels).

    Args:
      examples: a `sources.Examples` (in-memory uint8 images or file paths).
      batch_size: the global batch size (per-replica batch x replicas).
      training: shuffle (seeded, reshuffled every epoch) and augment.
      min_steps: in training, an epoch has at least this many batches
        (`passes_per_epoch`).
      exact: for a test evaluation: each example at most once, a file that
        cannot be read now left out rather than replaced by the next one,
        and each element carries the example's index in `examples`, so the
        evaluation counts each image once and knows which it read.
      targets: float32 [examples, width] in place of the one-hot labels
        (distillation packs labels and a teacher's outputs there); they
        travel with their images through shuffle, repeat and augmentation.
    """
    labels = (tf.one_hot(examples.labels, num_classes, dtype=tf.float32) if targets is None
              else tf.constant(targets, tf.float32))
    if exact:
        return _exact(examples, labels, batch_size, image_size, channels)
    if examples.images is not None:
        dataset = tf.data.Dataset.from_tensor_slices((examples.images, labels))
        dataset = dataset.map(
            lambda image, label: (tf.cast(image, tf.float32), label),
            num_parallel_calls=AUTOTUNE,
        )
    else:
        paths = np.asarray(examples.files, dtype=str)
        dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
        if training:
            # Shuffle the (path, label) pairs, not decoded images: the buffer
            # then holds the whole split at a few bytes an example.
            dataset = dataset.shuffle(len(examples), seed=seed,
                                      reshuffle_each_iteration=True)
        # Decoded images stream from disk every epoch: memory stays flat
        # however many files there are. Every file was decoded once before
        # training (image_check); one that broke since is dropped rather than
        # ending the run mid-epoch. `repeat().take(n)` keeps the epoch at n
        # examples (the next one fills a dropped one's place), so Keras still
        # knows the number of steps: ignore_errors alone hides it, which costs
        # the first epoch its progress bar and ends it with a warning.
        dataset = dataset.map(
            lambda path, label: (
                decode_image(tf.io.read_file(path), channels, image_size),
                label,
            ),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        ).ignore_errors(log_warning=True).repeat().take(len(examples))
    if training and examples.files is None:
        dataset = dataset.shuffle(
            len(examples), seed=seed, reshuffle_each_iteration=True
        )
    if training:
        dataset = dataset.repeat(passes_per_epoch(len(examples), batch_size, min_steps))
    dataset = dataset.batch(batch_size)
    if training:
        dataset = augmented(dataset, augment, seed)
    return with_data_sharding(dataset.prefetch(AUTOTUNE))


def _exact(examples, labels, batch_size, image_size, channels):
    """`make_dataset(exact=True)`: (pixels, one-hot, index) batches."""
    indices = tf.range(len(examples), dtype=tf.int64)
    if examples.images is not None:
        dataset = tf.data.Dataset.from_tensor_slices((examples.images, labels, indices)).map(
            lambda image, label, index: (tf.cast(image, tf.float32), label, index),
            num_parallel_calls=AUTOTUNE)
    else:
        paths = np.asarray(examples.files, dtype=str)
        dataset = tf.data.Dataset.from_tensor_slices((paths, labels, indices)).map(
            lambda path, label, index: (
                decode_image(tf.io.read_file(path), channels, image_size), label, index),
            num_parallel_calls=AUTOTUNE, deterministic=True,
        ).ignore_errors(log_warning=True)  # Counted by the evaluation, not refilled.
    return with_data_sharding(dataset.batch(batch_size).prefetch(AUTOTUNE))


def rgb(images, image_size):
    """float32 0-255 RGB at `image_size`, from any channel count (one image
    or a batch): where images of several sources meet in one batch."""
    images = tf.image.resize(tf.cast(images, tf.float32), [image_size, image_size])
    if images.shape[-1] in (1, 2):  # Grayscale, or grayscale + alpha.
        return tf.repeat(images[..., :1], 3, axis=-1)
    return images[..., :3]


def rgb_dataset(examples, image_size, *, order=None, shuffle_seed=None, labels=None):
    """A dataset of `examples`' images (`rgb`), at `order` (default: all),
    reshuffled every pass when `shuffle_seed` is given; with `labels`
    (float32 [examples, width]) each image travels with its row."""
    order = np.arange(len(examples)) if order is None else np.asarray(order)
    sources = (examples.images[order] if examples.images is not None
               else np.asarray(examples.files, dtype=str)[order])
    dataset = tf.data.Dataset.from_tensor_slices(
        sources if labels is None else (sources, np.asarray(labels, np.float32)[order]))
    if shuffle_seed is not None:  # Paths, not decoded images: a small buffer.
        dataset = dataset.shuffle(len(order), seed=shuffle_seed, reshuffle_each_iteration=True)

    def load(source, *row):
        image = (rgb(source, image_size) if examples.images is not None else
                 decode_image(tf.io.read_file(source), 3, image_size))
        return (image, *row) if row else image

    dataset = dataset.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    if examples.files is not None:
        # As in training: a file that broke since its check is dropped, and
        # `repeat().take(n)` keeps the pass at n images.
        dataset = dataset.ignore_errors(log_warning=True).repeat().take(len(order))
    return dataset


def augmented(batches, augment, seed):
    """`batches` of (pixels, labels) with the requested augmentations applied
    (seeded); unchanged when there are none."""
    augmenter = _augmenter(augment, seed)
    if augmenter is None:
        return batches
    return batches.map(lambda images, label: (augmenter(images, training=True), label),
                       num_parallel_calls=AUTOTUNE)


def with_data_sharding(dataset):
    """Across workers, each takes its share of every global batch (the same
    seeded order everywhere makes the shares disjoint). Sharding by file would
    need as many files as workers and gives uneven epochs."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.with_options(options)


def _batching(data, image_size, global_batch):
    return dict(num_classes=data.num_classes, batch_size=global_batch,
                image_size=image_size, channels=data.channels)


def training_datasets(data, config, image_size, global_batch):
    """(train, validation) pipelines of a `LabelledData`: the training split
    shuffled, augmented and repeated up to `--min_steps_per_epoch` as
    `config` says; validation as it is."""
    common = _batching(data, image_size, global_batch)
    return (make_dataset(data.train, training=True, seed=config.seed, augment=config.augment,
                         min_steps=config.min_steps_per_epoch, **common),
            make_dataset(data.validation, **common))


def test_dataset(data, image_size, global_batch):
    """The test split's pipeline: every readable image once, in order, with
    its index (`make_dataset(exact=True)`)."""
    return make_dataset(data.test, exact=True, **_batching(data, image_size, global_batch))
