"""`--export_tflite`: a TensorFlow Lite model of the pixels path.

TFLite has no image decoders and cannot initialise a lookup table from a
file, so the `.tflite` takes pixels (like `serving_pixels`) and names its
labels with a string constant gathered by index. It answers with the same
outputs as the SavedModel signatures, and `labels.txt` is written beside it.
"""

import os
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_transfer.serving import signatures

FILE = "model.tflite"
SIGNATURE = signatures.PIXELS_SIGNATURE


class TFLiteError(RuntimeError):
    """This TensorFlow cannot convert the model; the message says why."""


def _pixels_saved_model(model, class_names, channels, directory):
    names = tf.constant(list(class_names))
    k = signatures.top_k_for(len(class_names))

    def serve_pixels(pixels):
        probabilities = tf.cast(model(pixels, training=False), tf.float32)
        top = tf.math.top_k(probabilities, k=k)
        return {
            "probabilities": probabilities,
            "label": tf.gather(names, top.indices[:, 0]),
            "score": top.values[:, 0],
            "top_k_labels": tf.gather(names, top.indices),
            "top_k_scores": top.values,
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE, serve_pixels,
        input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32,
                                       name="pixels")],
    )
    archive.write_out(directory, verbose=False)


def convert(model, class_names, channels):
    """The `.tflite` flatbuffer of the pixels path; raises TFLiteError."""
    if not hasattr(tf, "lite") or not hasattr(tf.lite, "TFLiteConverter"):
        raise TFLiteError(
            "export_tflite needs tf.lite.TFLiteConverter, which this TensorFlow "
            f"does not provide. Received: tensorflow {tf.__version__}"
        )
    # From a SavedModel rather than a concrete function: converting a
    # concrete function that captures Keras 3 variables loses their values.
    staging = tempfile.mkdtemp(prefix="tflite-")
    try:
        _pixels_saved_model(model, class_names, channels, staging)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            staging, signature_keys=[SIGNATURE])
        try:
            return converter.convert()
        except Exception as error:  # The converter raises many types.
            raise TFLiteError(
                f"tensorflow {tf.__version__} could not convert the model to "
                f"TFLite: {type(error).__name__}: {str(error)[:500]}"
            ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write(model, directory, class_names, channels):
    """Writes `model.tflite` and `labels.txt` into `directory`; returns the path."""
    content = convert(model, class_names, channels)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, FILE)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "wb") as handle:
        handle.write(content)
    with open(os.path.join(directory, "labels.txt"), "w", encoding="utf-8") as handle:
        handle.write("".join(f"{name}\n" for name in class_names))
    os.replace(temporary, path)
    return path
