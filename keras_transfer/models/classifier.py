"""The classifier: raw pixels -> resize -> RGB -> backbone preprocessing ->
base -> pooling -> dropout -> Dense softmax; and its trainability per phase."""

import hashlib

import keras
import numpy as np

from keras_transfer.config import ConfigError
from keras_transfer.models import backbones


@keras.saving.register_keras_serializable(package="keras_transfer")
class ToRGB(keras.layers.Layer):
    """Makes any channel count RGB: grayscale is repeated, alpha dropped."""

    def call(self, images):
        channels = images.shape[-1]
        if channels in (1, 2):  # Grayscale, or grayscale + alpha.
            return keras.ops.repeat(images[..., :1], 3, axis=-1)
        if channels == 3:
            return images
        return images[..., :3]  # RGBA: alpha carries no class information.

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)


@keras.saving.register_keras_serializable(package="keras_transfer")
class BackbonePreprocessing(keras.layers.Layer):
    """The backbone's own `preprocess_input`, inside the model.

    Keeping it in the graph means the SavedModel takes raw 0-255 pixels and a
    client never has to know whether the base wants caffe BGR means, [-1, 1]
    or nothing at all.
    """

    def __init__(self, model_name, **kwargs):
        super().__init__(**kwargs)
        self.model_name = model_name
        self._spec = backbones.get(model_name)

    def call(self, images):
        return self._spec.preprocess_input(images)

    def get_config(self):
        return {**super().get_config(), "model_name": self.model_name}


def cut_tensor(spec, base, base_layer):
    """The base's tensor at `base_layer`, or None when this backbone lacks it.

    `top` is the base's output; a block name means the block's output (the
    input of the next block's first layer; for the last block, the base's
    output); anything else is a layer name.
    """
    if base_layer == "top":
        return base.output
    names = list(spec.blocks)
    if base_layer in spec.blocks:
        following = names[names.index(base_layer) + 1:]
        return base.get_layer(spec.blocks[following[0]]).input if following else base.output
    if base_layer in [layer.name for layer in base.layers]:
        return base.get_layer(base_layer).output
    return None


def cut_base(spec, base, base_layer):
    """`base` up to `base_layer` (sharing its layers and weights), or a
    ConfigError naming what this backbone has."""
    if base_layer == "top":
        return base
    cut = cut_tensor(spec, base, base_layer)
    if cut is None or len(cut.shape) != 4:
        raise ConfigError(
            f"base_layer must be 'top', a block of {spec.name} ({', '.join(spec.blocks)}) "
            f"or the name of one of its convolutional layers. Received: "
            f"base_layer={base_layer!r}")
    # The base's own name: checkpoints of a cut classifier read like a whole one's.
    return keras.Model(base.input, cut, name=base.name)


def build_classifier(spec, num_classes, *, image_size, channels, dropout=0.2,
                     l2=0.0, base_weights=None, base_in_inference_mode=True,
                     base_layer="top"):
    """Returns a Keras model from raw pixels (any size, `channels`) to class
    probabilities.

    Args:
      spec: a `backbones.BackboneSpec`.
      base_weights: None (random), "imagenet", or a weights file for the base.
      base_in_inference_mode: call the base with `training=False`. True for
        transfer: BatchNormalization then keeps the moving statistics learned
        on the source data in both phases; updating them from a few small
        target batches would wreck the features the head relies on (and in
        fine-tuning, undo what phase 1 learned). False for training from
        scratch, where BatchNormalization must learn its statistics.
      base_layer: where the base ends (`cut_base`): `top`, a block, a layer.
        Weights load into the whole base first, so a cut base keeps them.
    """
    if base_weights == "imagenet":
        base = spec.build(image_size, weights="imagenet")
    else:
        base = spec.build(image_size)
        if base_weights not in (None, "none"):
            base.load_weights(base_weights)
    return classifier_on_base(spec, cut_base(spec, base, base_layer), num_classes,
                              image_size=image_size, channels=channels, dropout=dropout, l2=l2,
                              base_in_inference_mode=base_in_inference_mode)


def classifier_on_base(spec, base, num_classes, *, image_size, channels, dropout=0.2, l2=0.0,
                       base_in_inference_mode=True, name=None):
    """`build_classifier`'s model around an existing `base` model: given
    the base of another classifier, the two share its layers and weights
    (a multi-task run's heads, `training/multitask.py`), each with its own
    input (`channels`) and Dense head. `name` defaults to the backbone's
    `<model>_classifier`."""
    inputs = keras.Input(shape=(None, None, channels), dtype="float32", name="pixels")
    x = keras.layers.Resizing(image_size, image_size, name="resize")(inputs)
    x = ToRGB(name="to_rgb")(x)
    x = BackbonePreprocessing(spec.name, name="preprocess")(x)
    x = base(x, training=False) if base_in_inference_mode else base(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    # float32 output even under mixed precision: softmax and the loss need
    # the range, and clients expect float32 probabilities.
    outputs = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=regularizer,
        dtype="float32",
        name="classifier",
    )(x)
    return keras.Model(inputs, outputs, name=name or f"{spec.name}_classifier")


# Keras' default BatchNormalization momentum (0.99) suits ImageNet-length runs.
# Over the few hundred steps of a small from-scratch run the moving statistics
# lag far behind the weights, and transfer later runs the base on exactly those
# statistics (training=False); 0.9 lets them keep up.
SCRATCH_BATCHNORM_MOMENTUM = 0.9


def set_batchnorm_momentum(model, momentum):
    for layer in base_of(model).layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def synchronize_batchnorm(model):
    """Batch statistics over the global batch, not each replica's share.

    Only matters where BatchNormalization trains (from scratch): with
    per-replica statistics every replica's moving averages drift apart (the
    workers of a multi-worker run would end with different weights) and
    small per-replica batches give noisy statistics. With them synchronised
    the result matches one device on the same global batch.
    """
    for layer in base_of(model).layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


def weights_fingerprint(model):
    """A short hash of every weight's exact bytes: equal only for
    bit-identical models (the workers of a multi-worker run, two
    `--deterministic` runs)."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


class TowardStart(keras.regularizers.Regularizer):
    """L2-SP (Li, Grandvalet and Davoine, 2018): `strength` times a weight's
    squared distance from its value when fine-tuning started, where plain L2
    measures it from zero. A few labels then move the pretrained features
    only as far as they must."""

    def __init__(self, start, strength):
        self.start = keras.ops.convert_to_tensor(start)
        self.strength = strength

    def __call__(self, weight):
        return self.strength * keras.ops.sum(keras.ops.square(weight - self.start))


def anchor_base_weights(model, strength):
    """Regularises the base's trainable weights toward their current values
    (`TowardStart`); returns a function that takes the regularisers off."""
    anchored = list(base_of(model).trainable_weights)
    for weight in anchored:
        weight.regularizer = TowardStart(weight.numpy(), strength)

    def release():
        for weight in anchored:
            weight.regularizer = None

    return release


def base_of(model):
    """The backbone inside a classifier built by `build_classifier`."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError(f"model {model.name!r} has no nested base model")


def check_unfreeze(spec, unfreeze, base):
    """The first layer `--unfreeze` trains in `base` (None: all of it);
    raises a clear error when it names no block or layer there."""
    start = backbones.unfreeze_start_layer(spec, unfreeze)
    names = [layer.name for layer in base.layers]
    if unfreeze == "top" and start not in names:
        # A base cut below its top block (--base_layer): its own last block
        # is the top.
        present = [first for first in spec.blocks.values() if first in names]
        start = present[-1] if present else None
    if start is not None and start not in names:
        raise ConfigError(
            f"unfreeze must be 'top', 'all', a block of {spec.name} "
            f"({', '.join(spec.blocks)}) or one of its layer names. "
            f"Received: unfreeze={unfreeze!r}"
        )
    return start


def set_trainable_for_phase(model, spec, phase, unfreeze="top"):
    """Sets which weights train in `phase`.

    feature_extraction: the base is frozen, only the head trains.
    fine_tune: the base from the `unfreeze` point up trains, BatchNormalization
      layers excepted (their gamma/beta were fit together with the frozen
      moving statistics, and tiny target batches make them noisy).
    scratch: everything trains.
    """
    base = base_of(model)
    if phase == "feature_extraction":
        base.trainable = False
        return
    base.trainable = True
    if phase == "scratch":
        return
    start = check_unfreeze(spec, unfreeze, base)
    trainable = start is None
    for layer in base.layers:
        trainable = trainable or layer.name == start
        layer.trainable = trainable and not isinstance(
            layer, keras.layers.BatchNormalization
        )
