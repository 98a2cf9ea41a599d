"""Models: the backbone registry, the transfer classifier, `--weights` resolution.

An export's `model.keras` holds the classifier's own layers (registered
with Keras as `keras_transfer>ToRGB` and `keras_transfer>BackbonePreprocessing`):
`import keras_transfer.models.classifier` before `keras.saving.load_model`, or
use `keras_transfer.load_keras_model`. This package does not import it for
you: `keras_transfer.config` imports the registry below it without
TensorFlow, and so do the command lines' flag checks.
"""
