"""Phase 1 on recorded features: the frozen base runs once per image.

While the base is frozen (and called with `training=False`) its output for
an image never changes, yet `fit` recomputes it every epoch: on a CPU that is
all of phase 1's time. Here the trunk (pixels -> preprocessing -> base ->
pooling) runs once over each split, and the head trains on the recorded
features. The head model shares its Dropout and Dense layers with the
classifier, so training it trains the classifier's own head: same
initialisation, same batches in the same order, same dropout masks, hence the
same result as the uncached path, in a fraction of the time.

Only exact when nothing random happens before the pooling: no augmentation.
"""

import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from keras_transfer import evaluate

# Layers of `model.build_classifier` after the pooled features.
HEAD_LAYERS = ("dropout", "classifier")
FEATURE_LAYER = "pool"


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


def record(trunk, dataset, verbose=0):
    """Runs `trunk` over a batched (pixels, one-hot) dataset once.

    Returns (features float32 N x D, one-hot labels N x C).
    """
    return evaluate.outputs_over(trunk, dataset, verbose)


def feature_dataset(features, labels, *, batch_size, training=False, seed=0):
    """Batches of recorded features, shuffled exactly as the pixel pipeline
    shuffles its examples (same buffer, same seed), so both paths see the
    same batches."""
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if training:
        dataset = dataset.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def cache_key(**settings):
    """A short stable key of what the features depend on."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_or_record(path, trunk, dataset, verbose=0):
    """Features from `path` (an .npz) when recorded before, else recorded and
    saved there atomically. Returns (features, labels, reused)."""
    if path and os.path.isfile(path):
        with np.load(path) as stored:
            return stored["features"], stored["labels"], True
    features, labels = record(trunk, dataset, verbose)
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = f"{path[:-4]}.tmp-{os.getpid()}.npz"
        np.savez(temporary, features=features, labels=labels)
        os.replace(temporary, path)
    return features, labels, False


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


def phase_one_inputs(classifier, data, config, ctx, resolved, log):
    """What `train.run_phase` needs to run phase 1 on recorded features:
    {fit_model, train_data, validation_data}, or {} for the pixel path."""
    from keras_transfer import pipeline, weights

    if config.feature_cache == "off":
        return {}
    if config.augment:
        log("augmentation makes every epoch's images new: phase 1 runs the base on "
            "every batch (no feature cache)")
        return {}
    key = cache_key(model=config.model, weights=_weights_identity(resolved, config.seed),
                    image_size=ctx["image_size"], channels=data.channels,
                    policy=keras.mixed_precision.global_policy().name,
                    train=_fingerprint(data.train), validation=_fingerprint(data.validation),
                    tensorflow=tf.__version__)
    folder = os.path.join(weights.cache_root(config), "features", f"{config.model}-{key}")
    with ctx["strategy"].scope():  # Keras models keep the strategy they are built in.
        trunk, head = trunk_of(classifier), head_of(classifier)
    recorded, reused = {}, []
    for split in ("train", "validation"):
        pixels = pipeline.make_dataset(
            getattr(data, split), num_classes=data.num_classes,
            batch_size=ctx["global_batch"], image_size=ctx["image_size"],
            channels=data.channels)
        features, labels, was_cached = load_or_record(
            os.path.join(folder, f"{split}.npz"), trunk, pixels, config.verbose)
        recorded[split] = (features, labels)
        reused.append(was_cached)
    log(("reusing the base features recorded" if all(reused) else "recorded the base features")
        + f" of the train and validation splits ({features.shape[1]} per image, {folder}); "
        "phase 1 trains the head on them")
    return {
        "fit_model": head,
        "train_data": feature_dataset(*recorded["train"], batch_size=ctx["global_batch"],
                                      training=True, seed=config.seed),
        "validation_data": feature_dataset(*recorded["validation"],
                                           batch_size=ctx["global_batch"]),
    }
