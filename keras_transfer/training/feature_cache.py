"""Phase 1 on recorded features: the frozen base runs once per image.

While the base is frozen (and called with `training=False`) its output for
an image never changes, yet `fit` recomputes it every epoch: on a CPU that is
all of phase 1's time. Here the trunk (pixels -> preprocessing -> base ->
pooling) runs once over each split, and the head trains on the recorded
features. The head model shares its Dropout and Dense layers with the
classifier, so training it trains the classifier's own head: same
initialisation, same batches in the same order, same dropout masks, hence the
same result as the uncached path, in a fraction of the time.

The features are recorded into a `tf.data` dataset on disk (`--cache_dir`,
keyed by everything they depend on; the next run reuses them), streamed
batch by batch, so recording takes no more memory however large the split.
Training reads them into memory when they fit, else streams them from disk
every epoch through a shuffle buffer of bounded size (`--feature_cache`).

Exact only when nothing random happens before the pooling: no augmentation.
With `--augment`, either the base runs every epoch (the default), or
`--feature_cache_copies=K` records K augmented views of each training image
and every epoch draws one of them per image: an approximation of augmenting
anew every epoch, at the cost of K recording passes.
"""

import dataclasses
import hashlib
import json
import os
import shutil
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_transfer import config as config_lib, disk_space, integrity, log
from keras_transfer.data import pipeline
from keras_transfer.evaluation import metrics as evaluate
from keras_transfer.log import logger

# Layers of `classifier.build_classifier` after the pooled features.
HEAD_LAYERS = ("dropout", "classifier")
FEATURE_LAYER = "pool"
# `auto` trains from memory when the recorded training features take at most
# this share of the memory available (they are held twice: the in-memory
# dataset and the shuffle buffer).
MEMORY_SHARE = 0.25
# Streaming from disk, the shuffle buffer holds at most this much.
SHUFFLE_BUFFER_BYTES = 256 * 2 ** 20


def trunk_of(classifier):
    """pixels -> pooled base features, sharing the classifier's layers."""
    return keras.Model(classifier.input, classifier.get_layer(FEATURE_LAYER).output,
                       name="trunk")


def head_of(classifier):
    """pooled features -> probabilities, through the classifier's own head."""
    width = classifier.get_layer(FEATURE_LAYER).output.shape[-1]
    features = keras.Input(shape=(width,), name="features")
    x = features
    for name in HEAD_LAYERS:
        x = classifier.get_layer(name)(x)
    return keras.Model(features, x, name="head")


def record(trunk, views, path, verbose=0):
    """Runs `trunk` once over each of `views` and saves the features at `path`.

    `views` are batched (pixels, one-hot) datasets of the same examples in the
    same order: the split itself, or its augmented copies. Each example is
    stored as (features K x D float32, one-hot labels), K = len(views), in a
    `tf.data` dataset written batch by batch (memory stays flat) into a
    temporary folder renamed into place, so `path` is whole or absent.
    Returns the stored dataset (`tf.data.Dataset.load`).
    """
    channels = views[0].element_spec[0].shape[-1]
    forward = evaluate.forward(trunk, channels)
    width = trunk.output.shape[-1]
    num_classes = views[0].element_spec[1].shape[-1]
    steps = int(views[0].cardinality())
    progress = log.Progress(f"recording the frozen base's features ({os.path.basename(path)} "
                            "split)", steps if steps > 0 else None, "batch", verbose)

    def batches():
        for step, together in enumerate(zip(*views)):
            labels = together[0][1]
            for _, other in together[1:]:  # Copies must be of the same examples.
                tf.debugging.assert_equal(other, labels)
            yield (tf.stack([tf.cast(forward(images), tf.float32) for images, _ in together],
                            axis=1),
                   labels)
            progress.update(step + 1)

    signature = (tf.TensorSpec([None, len(views), width], tf.float32),
                 tf.TensorSpec([None, num_classes], tf.float32))
    stream = tf.data.Dataset.from_generator(batches, output_signature=signature).unbatch()
    temporary = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    folder = os.path.dirname(path)
    needed = 4 * (len(views) * width + num_classes) * max(1, steps) * _batch_size(views[0])
    disk_space.require(folder, f"the recorded features ({os.path.basename(path)})", needed)
    try:
        stream.save(temporary)
        integrity.seal(temporary, os.listdir(temporary))  # Last: the recording is whole.
        progress.finish()
    except (OSError, tf.errors.OpError) as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if disk_space.is_out_of_space(error):
            raise disk_space.full(folder, f"the recorded features ({os.path.basename(path)})",
                                  needed + disk_space.HEADROOM_BYTES) from None
        raise
    try:
        os.replace(temporary, path)
    except OSError:
        # Another process (a second worker, a parallel run) put the same
        # features there first: theirs are as good as ours.
        if not os.path.isdir(path):
            raise
        shutil.rmtree(temporary, ignore_errors=True)
    return tf.data.Dataset.load(path)


def _batch_size(batches):
    """The batch size of a batched dataset (for a size estimate)."""
    size = batches.element_spec[1].shape[0]
    return int(size) if size else 32


def load_or_record(path, trunk, views, verbose=0):
    """The features stored at `path` when recorded before and whole (their
    manifest verified), else recorded there now (`record`); a damaged
    recording is set aside first. Returns (stored dataset, reused)."""
    if os.path.isdir(path):
        problem = integrity.problem(path)
        if problem is None:
            return tf.data.Dataset.load(path), True
        integrity.set_aside(os.path.dirname(path), [os.path.basename(path)],
                            f"{os.path.basename(path)}: {problem}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    disk_space.remove_stale_temporaries(os.path.dirname(path))  # Killed recordings'.
    return record(trunk, views, path, verbose), False


def _bytes_per_example(stored):
    views, labels = stored.element_spec
    return 4 * (views.shape.num_elements() + labels.shape.num_elements())


def fits_in_memory(stored):
    """Whether training can hold `stored` in memory (`MEMORY_SHARE`)."""
    needed = _bytes_per_example(stored) * int(stored.cardinality())
    return needed <= MEMORY_SHARE * _available_memory_bytes()


def _available_memory_bytes():
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def feature_dataset(stored, *, batch_size, in_memory=True, training=False, seed=0,
                    min_steps=1):
    """Batches of recorded (features, one-hot) for the head.

    In training they are shuffled exactly as the pixel pipeline shuffles its
    examples (a buffer of the whole split, same seed), so both paths see the
    same batches; streamed from disk the buffer is capped at
    `SHUFFLE_BUFFER_BYTES`, which only changes the order for splits larger
    than that. With K recorded views per example, each epoch draws one of
    them per example (seeded). A training epoch has at least `min_steps`
    batches, repeated as the pixel pipeline repeats a small split.
    """
    examples = int(stored.cardinality())
    dataset = stored.cache() if in_memory else stored
    copies = stored.element_spec[0].shape[0]
    if copies == 1:
        dataset = dataset.map(lambda views, labels: (views[0], labels))
    else:
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, draws).map(
            lambda example, draw: (example[0][draw % copies], example[1]))
    if training:
        # Shuffle then repeat, adjacent as in the pixel pipeline: tf.data fuses
        # the pair into one op whose later epochs shuffle differently from
        # the unfused pair, so any op between them would change the order.
        buffer = examples if in_memory else max(
            1, min(examples, SHUFFLE_BUFFER_BYTES // _bytes_per_example(stored)))
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat(
            pipeline.passes_per_epoch(examples, batch_size, min_steps))
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def cache_key(**settings):
    """A short stable key of what the features depend on."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fingerprint(examples):
    """What the features of a split depend on in the data itself."""
    digest = hashlib.sha256(np.ascontiguousarray(examples.labels).tobytes())
    if examples.images is not None:
        digest.update(np.ascontiguousarray(examples.images).tobytes())
    else:
        for path in examples.files:
            stat = os.stat(path)
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _weights_identity(resolved, seed):
    if resolved.load and os.path.isfile(resolved.load):
        stat = os.stat(resolved.load)
        return [resolved.kind, resolved.load, stat.st_size, stat.st_mtime_ns]
    # ImageNet through Keras' download, or a random base (fixed by the seed).
    return [resolved.kind, resolved.load, seed if resolved.kind == "none" else None]


@dataclasses.dataclass(frozen=True)
class RecordedInputs:
    """What `phase.run_phase` fits in phase 1 instead of the classifier on
    pixels: the head alone, on the recorded features."""

    fit_model: Any
    train_data: Any
    validation_data: Any


def phase_one_inputs(classifier, data, config, ctx, resolved):
    """`RecordedInputs` for phase 1, or None for the pixel path (`--feature_cache=off`,
    or augmentation without recorded views)."""
    if config.feature_cache == "off":
        return None
    copies = config.feature_cache_copies if config.augment else 1
    if not copies:
        logger.info("augmentation makes every epoch's images new: phase 1 runs the base on "
            "every batch (no feature cache; --feature_cache_copies=K records K "
            "augmented views instead)")
        return None
    key = cache_key(model=config.model, base_layer=config.base_layer,
                    weights=_weights_identity(resolved, config.seed),
                    image_size=ctx.image_size, channels=data.channels,
                    policy=keras.mixed_precision.global_policy().name,
                    train=_fingerprint(data.train), validation=_fingerprint(data.validation),
                    augment=sorted(config.augment), copies=copies, seed=(
                        config.seed if config.augment else None),
                    tensorflow=tf.__version__)
    folder = os.path.join(config_lib.cache_root(config), "features", f"{config.model}-{key}")
    with ctx.strategy.scope():  # Keras models keep the strategy they are built in.
        trunk, head = trunk_of(classifier), head_of(classifier)
    stored, reused = {}, []
    for split in ("train", "validation"):
        pixels = pipeline.make_dataset(
            getattr(data, split), num_classes=data.num_classes,
            batch_size=ctx.global_batch, image_size=ctx.image_size,
            channels=data.channels)
        views = [pixels] if split == "validation" or not config.augment else [
            pipeline.augmented(pixels, config.augment, seed=config.seed + copy)
            for copy in range(copies)]
        stored[split], was_cached = load_or_record(
            os.path.join(folder, split), trunk, views, config.verbose)
        reused.append(was_cached)
    in_memory = {"memory": True, "disk": False}.get(config.feature_cache)
    if in_memory is None:
        in_memory = fits_in_memory(stored["train"])
    width = stored["train"].element_spec[0].shape[-1]
    what = (f"{copies} augmented view(s) of each training image (each epoch draws one)"
            if config.augment else "the train and validation splits")
    done = "reusing the base features recorded" if all(reused) else "recorded the base features"
    logger.info(f"{done} of {what} ({width} per image, {folder}); phase 1 trains the head "
                f"on them {'in memory' if in_memory else 'streamed from disk'}")
    common = dict(batch_size=ctx.global_batch, in_memory=in_memory)
    return RecordedInputs(
        fit_model=head,
        train_data=feature_dataset(stored["train"], training=True, seed=config.seed,
                                   min_steps=config.min_steps_per_epoch, **common),
        validation_data=feature_dataset(stored["validation"], **common),
    )
