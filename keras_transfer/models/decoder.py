"""The autoencoder behind `--weights=autoencoder`: the backbone's base, cut
where the transfer will cut it, as the encoder, and a decoder that mirrors
it back to the input's size.

The decoder doubles the feature map's side with a strided transposed
convolution per step (the encoder halves it with a pooling or a stride per
block), halving the channels as the encoder doubled them, then a sigmoid
convolution gives three channels on 0-1. Only the encoder's weights leave
the autoencoder: they are the base that transfer loads.
"""

import math

import keras

from keras_transfer.models import classifier as model_lib

# The decoder's widest and narrowest layers: the encoder's widest (2,048 in
# ResNet50) would make the decoder as heavy as the encoder, for pixels.
DECODER_MAX_CHANNELS = 256
DECODER_MIN_CHANNELS = 32


def _upsampling_steps(feature_size, image_size):
    return max(0, math.ceil(math.log2(image_size / feature_size)))


def decode(features, image_size):
    """The decoder's layers on `features` (a 4-D tensor): RGB on 0-1 at
    `image_size`."""
    side, channels = int(features.shape[1]), int(features.shape[-1])
    width = max(DECODER_MIN_CHANNELS, min(DECODER_MAX_CHANNELS, channels))
    x = features
    for step in range(_upsampling_steps(side, image_size)):
        x = keras.layers.Conv2DTranspose(width, 3, strides=2, padding="same",
                                         name=f"decoder_up{step + 1}")(x)
        x = keras.layers.BatchNormalization(momentum=model_lib.SCRATCH_BATCHNORM_MOMENTUM,
                                            name=f"decoder_bn{step + 1}")(x)
        x = keras.layers.ReLU(name=f"decoder_relu{step + 1}")(x)
        width = max(DECODER_MIN_CHANNELS, width // 2)
    if int(x.shape[1]) != image_size:  # A size that is not the features' times 2^k.
        x = keras.layers.Resizing(image_size, image_size, name="decoder_resize")(x)
    # float32 under mixed precision, as the classifier's output: the loss
    # compares it with 0-1 pixels.
    return keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid", dtype="float32",
                               name="decoder_pixels")(x)


def build_autoencoder(spec, image_size, base_layer):
    """Returns (autoencoder, base).

    `autoencoder` maps 0-255 RGB pixels at `image_size` to their 0-1
    reconstruction through the base cut at `base_layer` (`cut_base`), which
    runs in training mode: from scratch, BatchNormalization learns its
    statistics. `base` is the whole, randomly initialised backbone base the
    encoder shares its layers with: what is saved and transferred (the
    layers above the cut stay as initialised, and transfer cuts them off
    again).
    """
    base = spec.build(image_size)
    encoder = model_lib.cut_base(spec, base, base_layer)
    pixels = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="pixels")
    x = model_lib.BackbonePreprocessing(spec.name, name="preprocess")(pixels)
    reconstruction = decode(encoder(x), image_size)
    return keras.Model(pixels, reconstruction, name=f"{spec.name}_autoencoder"), base
