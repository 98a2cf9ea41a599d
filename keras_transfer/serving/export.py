"""SavedModel export in TF Serving's layout, written atomically.

`EXPORT_BASE/<version>/` holds a SavedModel whose signatures (see
`signatures.py`) take encoded images (`serving_default`, `image_bytes`) or
pixels (`serving_pixels`, `serving_pixels_uint8`); decoding, resizing and
the backbone's preprocessing run in the graph. `labels.txt` and
`model_card.json` are among its assets. Beside the SavedModel, `model.keras`
is the same classifier in Keras' native format, for Keras users:
`keras.saving.load_model` once `keras_transfer.models.classifier` is imported
(it registers the model's two custom layers), or `keras_transfer.load_keras_model`.
A version folder appears only when complete: all of it is written to a
temporary folder beside it and renamed.

Re-exporting a finished run from its best checkpoint is `reexport.py`.
"""

import dataclasses
import os
import shutil
import socket
import tempfile
from typing import Any

import keras
import tensorflow as tf

from keras_transfer import config as config_lib, disk_space, faults
from keras_transfer.data import class_names as class_names_lib
from keras_transfer.serving import model_card, signatures, tflite as tflite_lib

LABELS_FILE = "labels.txt"
KERAS_FILE = "model.keras"
TFLITE_DIR = "tflite"


@dataclasses.dataclass(frozen=True)
class TaskHead:
    """`--export_heads=all`: another task's classifier (on the exported
    model's base), served as `serving_<name>` with `labels_<name>.txt`."""

    name: str
    model: Any
    class_names: tuple
    channels: int

    @property
    def labels_file(self):
        return f"labels_{self.name}.txt"


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


def _text_file_table(path):
    # A table initialised from a file makes that file a tracked asset of the
    # SavedModel: it is copied into `assets/`, travels with the model, and
    # TensorFlow finds it there wherever the folder is moved.
    initializer = tf.lookup.TextFileInitializer(
        path,
        key_dtype=tf.int64,
        key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        value_dtype=tf.string,
        value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
    )
    return tf.lookup.StaticHashTable(initializer, default_value="")


def _write_saved_model(model, directory, labels_path, card_path, image_size, channels,
                       max_megapixels, heads=()):
    labels_table = _text_file_table(labels_path)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(labels_table)
    # ExportArchive saves the files of tracked resources only; a table over
    # the card's lines is the public way to make the card such a file.
    archive.track(_text_file_table(card_path))
    signatures.add_endpoints(archive, model, labels_table, image_size=image_size,
                             channels=channels, max_megapixels=max_megapixels)
    for head in heads:
        table = _text_file_table(os.path.join(os.path.dirname(labels_path), head.labels_file))
        archive.track(head.model)
        archive.track(table)
        signatures.add_task_endpoint(archive, head.name, head.model, table,
                                     image_size=image_size, channels=head.channels,
                                     max_megapixels=max_megapixels)
    archive.write_out(directory, verbose=False)


def _write_keras_file(model, path):
    # An uncompiled copy: the trained model's optimizer slots (twice its
    # trainable weights again) and compiled metrics and schedule (some of
    # them ours, unknown to a plain `load_model`) serve no one who loads it.
    # (`keras.models.clone_model` would compile the copy again.)
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy.save(path)


def _check_arguments(model, class_names, image_size, channels):
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(
            f"image_size must be a positive integer. Received: image_size={image_size!r}"
        )
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
    class_names_lib.check_one_line(class_names, "export")


def _write_labels(path, class_names):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{name}\n" for name in class_names))


def _stage(model, staging, class_names, *, image_size, channels, card, tflite,
           max_megapixels, heads=()):
    """Writes the complete version folder inside `staging`; returns its path."""
    labels_path = os.path.join(staging, LABELS_FILE)
    _write_labels(labels_path, class_names)
    described = signatures.describe(len(class_names), channels)
    for head in heads:
        _write_labels(os.path.join(staging, head.labels_file), head.class_names)
        described[signatures.task_signature(head.name)] = {
            **signatures.describe(len(head.class_names), head.channels)[
                signatures.IMAGE_BYTES_SIGNATURE],
            "labels": head.labels_file, "classes": list(head.class_names)}
    card_path = os.path.join(staging, model_card.FILE)
    model_card.write(card_path, model_card.complete(
        card, class_names=class_names, image_size=image_size, channels=channels,
        max_megapixels=max_megapixels, signatures=described))
    saved_model = os.path.join(staging, "saved_model")
    _write_saved_model(model, saved_model, labels_path, card_path, image_size, channels,
                       max_megapixels, heads)
    # Inside the version folder, as the TFLite model: it appears (or not) with the rest.
    _write_keras_file(model, os.path.join(saved_model, KERAS_FILE))
    if tflite:
        tflite_lib.write(model, os.path.join(saved_model, TFLITE_DIR), class_names, channels)
    return saved_model


def _publish(folder, export_base):
    """Renames `folder` to the next free version number; returns its path."""
    while True:
        versions = existing_versions(export_base)
        target = os.path.join(export_base, str(versions[-1] + 1 if versions else 1))
        try:
            os.rename(folder, target)
            return target
        except OSError:
            if not os.path.exists(target):
                raise  # Not a race with another exporter: a real failure.


STAGING_PREFIX = ".staging-"


def _staging_prefix():
    """`.staging-PID@HOST-`: whose export a staging folder is, so a later one
    can tell a killed writer's leftovers from another export still running."""
    return f"{STAGING_PREFIX}{os.getpid()}@{socket.gethostname()}-"


def _writer_is_gone(name):
    owner = name[len(STAGING_PREFIX):].rpartition("-")[0]
    pid, _, host = owner.partition("@")
    if not pid.isdigit() or not host:
        return True  # Named before writers were recorded: from a finished process.
    if host != socket.gethostname():
        return False  # Another machine's process: not ours to judge.
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # Alive, under another user.
    return False


def remove_staging(export_base):
    """Removes the half-written versions killed exports left behind; those of
    an export still running (on this machine or another) are kept."""
    if not os.path.isdir(export_base):
        return
    for name in os.listdir(export_base):
        if name.startswith(STAGING_PREFIX) and _writer_is_gone(name):
            shutil.rmtree(os.path.join(export_base, name), ignore_errors=True)


def export_model(model, export_base, class_names, *, image_size, channels, card=None,
                 tflite=False, max_megapixels=config_lib.RunConfig.max_megapixels, heads=()):
    """Writes the next version under `export_base`; returns its path.

    Never touches an existing version: the new one (the SavedModel, and
    `model.keras` inside it) is written beside them under a temporary name
    and renamed into place only when complete.

    Args:
      image_size: the square size encoded images are resized to when decoded.
      card: optional run description for `model_card.json` (see
        `model_card.from_record`); the export adds class names, input size,
        signatures and versions.
      tflite: also write `tflite/model.tflite` (the pixels path) and
        `tflite/labels.txt` into the version folder.
      max_megapixels: `serving_default` refuses encoded images whose header
        declares more pixels, before decoding them (the run's limit).
      heads: `TaskHead`s of a multi-task run's other tasks, each its own
        signature (`--export_heads=all`).
    """
    _check_arguments(model, class_names, image_size, channels)
    os.makedirs(export_base, exist_ok=True)
    remove_staging(export_base)
    # The SavedModel's variables, as much again for model.keras and for a
    # TFLite copy.
    needed = disk_space.weights_bytes(model) * (3 if tflite else 2)
    disk_space.require(export_base, "the export", needed)
    staging = tempfile.mkdtemp(prefix=_staging_prefix(), dir=export_base)
    try:
        folder = _stage(model, staging, class_names, image_size=image_size,
                        channels=channels, card=card, tflite=tflite,
                        max_megapixels=max_megapixels, heads=heads)
        faults.reached("export")
        return _publish(folder, export_base)
    except (OSError, tf.errors.OpError) as error:
        if disk_space.is_out_of_space(error):
            raise disk_space.full(export_base, "the export",
                                  needed + disk_space.HEADROOM_BYTES) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)

