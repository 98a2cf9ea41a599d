"""SavedModel export in TF Serving's layout, written atomically.

`EXPORT_BASE/<version>/` holds a SavedModel whose `serving_default` signature
takes a batch of encoded images (`image_bytes`) and does decoding, resizing and
the backbone's preprocessing in the graph. A version folder appears only when
complete: the model is written to a temporary folder beside it and renamed.
"""

import os
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_transfer import pipeline

LABELS_FILE = "labels.txt"


def existing_versions(export_base):
    """Sorted version numbers of the complete exports under `export_base`."""
    if not os.path.isdir(export_base):
        return []
    # ASCII digits only: str.isdigit() also accepts names like "²" that int()
    # rejects. A file named like a number is not a version either.
    return sorted(
        int(name)
        for name in os.listdir(export_base)
        if name.isascii() and name.isdigit()
        and os.path.isdir(os.path.join(export_base, name))
    )


def latest_export(path):
    """The newest version folder of an export base or of a run's output folder."""
    for base in (path, os.path.join(path, "export")):
        versions = existing_versions(base)
        if versions:
            return os.path.join(base, str(versions[-1]))
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    raise FileNotFoundError(f"no SavedModel export found under {path!r}")


def _labels_table(labels_path):
    # A table initialised from the file makes labels.txt a tracked asset of
    # the SavedModel: it travels with the model and the graph reads it there.
    initializer = tf.lookup.TextFileInitializer(
        labels_path,
        key_dtype=tf.int64,
        key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        value_dtype=tf.string,
        value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
    )
    return tf.lookup.StaticHashTable(initializer, default_value="")


def _write_saved_model(model, directory, labels_path, image_size, channels):
    table = _labels_table(labels_path)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(table)

    def serve_image_bytes(image_bytes):
        images = tf.map_fn(
            lambda contents: pipeline.decode_image(contents, channels, image_size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([image_size, image_size, channels], tf.float32),
        )
        probabilities = tf.cast(model(images, training=False), tf.float32)
        return {
            "probabilities": probabilities,
            "label": table.lookup(tf.argmax(probabilities, axis=1)),
            "score": tf.reduce_max(probabilities, axis=1),
        }

    archive.add_endpoint(
        "serving_default",
        serve_image_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    archive.write_out(directory, verbose=False)


def _check_arguments(model, class_names, channels):
    # Keras accepts a batch whose channel count differs from the model's
    # input, so a mismatch would export silently and serve pixels decoded
    # differently from those the model was trained on.
    inputs = getattr(model, "inputs", None)
    expected = inputs[0].shape[-1] if inputs else None
    if expected is not None and expected != channels:
        raise ValueError(
            f"channels must match the model's input channels ({expected}). "
            f"Received: channels={channels}"
        )
    # labels.txt is read line by line: a name per output, none spanning lines.
    outputs = getattr(model, "outputs", None)
    num_classes = outputs[0].shape[-1] if outputs else None
    if num_classes is not None and len(class_names) != num_classes:
        raise ValueError(
            f"class_names must name each of the model's {num_classes} outputs. "
            f"Received: {len(class_names)} class_names={list(class_names)!r}"
        )
    for name in class_names:
        if "\n" in name or "\r" in name:
            raise ValueError(f"class names must be one line. Received: {name!r}")


def export_model(model, export_base, class_names, *, image_size, channels):
    """Writes the next version under `export_base`; returns its path.

    Never touches an existing version: the new one is written beside them
    under a temporary name and renamed into place only when complete.
    """
    _check_arguments(model, class_names, channels)
    os.makedirs(export_base, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=export_base)
    try:
        labels_path = os.path.join(staging, LABELS_FILE)
        with open(labels_path, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{name}\n" for name in class_names))
        saved_model = os.path.join(staging, "saved_model")
        _write_saved_model(model, saved_model, labels_path, image_size, channels)
        while True:
            versions = existing_versions(export_base)
            target = os.path.join(export_base, str(versions[-1] + 1 if versions else 1))
            try:
                os.rename(saved_model, target)
                return target
            except OSError:
                if not os.path.exists(target):
                    raise  # Not a race with another exporter: a real failure.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
