"""What `--weights=autoencoder` reconstructs: the pool of unlabelled images
and its `tf.data` pipelines of (corrupted pixels, clean 0-1 pixels[, weight]).

The pool is every image the run may learn from without a label: the source
task's (its labels ignored), `--unlabeled_data`'s, and the target's own
training split (with `rest`, the images beyond `--examples_per_class` too).
The target's validation and test images never enter it: what the base
learns must not include what the run is measured on.
"""

import dataclasses
import hashlib
from typing import Tuple

import numpy as np
import tensorflow as tf

from keras_transfer.data import pipeline, sources

AUTOTUNE = tf.data.AUTOTUNE
# `--autoencoder=masked` hides square patches of this side, in pixels.
MASK_PATCH = 4
# Hidden pixels are mid-grey: black would read as the background of a digit.
MASK_FILL = 127.5


@dataclasses.dataclass(frozen=True)
class Pool:
    """Unlabelled images, each group as its source keeps them (in memory or
    in files), with where each came from, for the log and the record."""

    groups: Tuple[sources.Examples, ...]
    names: Tuple[str, ...]

    def __len__(self):
        return sum(len(group) for group in self.groups)

    def sizes(self):
        return {name: len(group) for name, group in zip(self.names, self.groups)}


def pool_of(target, source=None, rest=False, whole_source=True):
    """The `Pool` of a target `LabelledData` (its training split, with
    `rest` its images beyond `--examples_per_class` too, and `unlabeled`
    from a folder) and, when given, a source task's `LabelledData` (all of
    its splits, none of which is the target's; its training split alone
    when not `whole_source`: a `--source_examples_per_class` cap holds)."""
    if rest and target.rest is not None and len(target.rest):
        # The whole training split, whatever the cap: in one order of its
        # own, so every cap reconstructs the same images in the same order
        # (and shares one cached base: `weights.autoencoder_cache_file`).
        named = [("target training images, labelled or not",
                  _canonical(sources.concatenate(target.train, target.rest)))]
    else:
        named = [("target training images", target.train)]
    if target.unlabeled is not None and len(target.unlabeled):
        named.append(("--unlabeled_data", target.unlabeled))
    if source is not None:
        for split in ((source.train, source.validation, source.test) if whole_source
                      else (source.train,)):
            named.append((f"source task {source.name}", split))
    names, groups = [], []
    for name, group in named:  # A source's splits join into one group.
        if len(group) == 0:
            continue
        if name in names and _joinable(groups[names.index(name)], group):
            groups[names.index(name)] = sources.concatenate(groups[names.index(name)], group)
        else:
            names.append(name)
            groups.append(group)
    return Pool(groups=tuple(groups), names=tuple(names))


def _joinable(first, second):
    """Both in files, or both in memory at one shape."""
    if first.images is None or second.images is None:
        return first.images is None and second.images is None
    return first.images.shape[1:] == second.images.shape[1:]


def _canonical(examples):
    """`examples` in an order that depends on their content alone: files by
    path, in-memory images by their bytes' digest."""
    if examples.files is not None:
        order = np.argsort(np.asarray(examples.files, dtype=str), kind="stable")
    else:
        digests = [hashlib.sha1(image.tobytes()).hexdigest() for image in examples.images]
        order = np.argsort(np.asarray(digests), kind="stable")
    return examples.take(order)


def corrupt(pixels, key, *, objective, noise_stddev=0.2, mask_ratio=0.5):
    """(input, target[, weight]) of one image for `objective`.

    The target is the clean image on 0-1; the input its corrupted version
    on 0-255 (what the base's preprocessing expects). The random draws are
    stateless, from `key` (two int64): the pipeline gives each training
    element a fresh key every pass, and each validation image the same key
    every epoch, so validation measures the same thing each time.
    """
    target = pixels / 255.0
    if objective == "plain":
        return pixels, target
    if objective == "denoising":
        noise = tf.random.stateless_normal(tf.shape(pixels), key, stddev=noise_stddev * 255.0)
        return tf.clip_by_value(pixels + noise, 0.0, 255.0), target
    size = tf.shape(pixels)[0]
    cells = (size + MASK_PATCH - 1) // MASK_PATCH
    hidden = tf.cast(tf.random.stateless_uniform([cells, cells], key) < mask_ratio, tf.float32)
    mask = tf.repeat(tf.repeat(hidden, MASK_PATCH, axis=0), MASK_PATCH, axis=1)[:size, :size]
    shown = pixels * (1.0 - mask[..., None]) + MASK_FILL * mask[..., None]
    # The loss counts the hidden pixels only (as in masked autoencoders):
    # copying the visible ones teaches nothing.
    return shown, target, mask


def _split(pool, validation_fraction, seed):
    """Per group, a seeded (training indices, validation indices)."""
    generator = np.random.default_rng(seed)
    parts = []
    for group in pool.groups:
        order = generator.permutation(len(group))
        held = int(round(len(group) * validation_fraction)) if len(group) > 1 else 0
        parts.append((np.sort(order[held:]), np.sort(order[:held])))
    return parts


def _joined(datasets, counts, seed):
    """One dataset of the `datasets` (`counts` elements each), interleaved in a
    seeded order, of known length (the loop needs it)."""
    datasets = [(d, c) for d, c in zip(datasets, counts) if c]
    if len(datasets) == 1:
        return datasets[0][0]
    choice = np.concatenate([np.full(count, i, np.int64)
                             for i, (_, count) in enumerate(datasets)])
    np.random.default_rng(seed).shuffle(choice)
    joined = tf.data.Dataset.choose_from_datasets(
        [d for d, _ in datasets], tf.data.Dataset.from_tensor_slices(choice))
    return joined.apply(tf.data.experimental.assert_cardinality(len(choice)))


def _keys(seed, fresh_each_pass):
    """Pairs of int64 keys for `corrupt`."""
    if fresh_each_pass:
        return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.range(2 ** 62).map(lambda i: tf.stack([tf.constant(seed, tf.int64),
                                                                  i]))


def datasets(pool, *, image_size, batch_size, objective, seed, noise_stddev=0.2,
             mask_ratio=0.5, validation_fraction=0.1, min_steps=1):
    """(training, validation) pipelines of the pool for `objective`.

    Training is reshuffled every pass and repeated up to `min_steps` batches
    an epoch, as the classifier's; validation is a fixed held-out share of
    each group, corrupted the same way every epoch.
    """
    parts = _split(pool, validation_fraction, seed)
    train_counts = [len(train) for train, _ in parts]
    validation_counts = [len(held) for _, held in parts]
    if not sum(validation_counts) or not sum(train_counts):
        raise ValueError("the autoencoder's pool is too small to hold out validation "
                         f"images: {len(pool)} image(s)")
    settings = dict(objective=objective, noise_stddev=noise_stddev, mask_ratio=mask_ratio)
    training = _joined([pipeline.rgb_dataset(group, image_size, order=train,
                                             shuffle_seed=seed + i)
                        for i, (group, (train, _)) in enumerate(zip(pool.groups, parts))],
                       train_counts, seed)
    training = training.repeat(pipeline.passes_per_epoch(sum(train_counts), batch_size,
                                                         min_steps))
    training = tf.data.Dataset.zip((training, _keys(seed, True))).map(
        lambda pixels, key: corrupt(pixels, key, **settings), num_parallel_calls=AUTOTUNE)
    validation = _joined([pipeline.rgb_dataset(group, image_size, order=held)
                          for group, (_, held) in zip(pool.groups, parts)],
                         validation_counts, seed + 1)
    validation = tf.data.Dataset.zip((validation, _keys(seed + 1, False))).map(
        lambda pixels, key: corrupt(pixels, key, **settings), num_parallel_calls=AUTOTUNE)
    return (pipeline.with_data_sharding(training.batch(batch_size).prefetch(AUTOTUNE)),
            pipeline.with_data_sharding(validation.batch(batch_size).prefetch(AUTOTUNE)))
