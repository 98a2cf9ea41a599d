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
    features, labels = [], []
    steps = int(dataset.cardinality())
    progress = keras.utils.Progbar(steps if steps > 0 else None, verbose=verbose,
                                   unit_name="batch") if verbose else None
    for step, (images, one_hot) in enumerate(dataset):
        features.append(keras.ops.convert_to_numpy(trunk(images, training=False)))
        labels.append(one_hot.numpy())
        if progress:
            progress.update(step + 1)
    return (np.concatenate(features).astype(np.float32),
            np.concatenate(labels).astype(np.float32))


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
