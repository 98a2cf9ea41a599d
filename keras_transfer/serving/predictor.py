"""Classifies image files with an export: the `Predictor` behind
`python -m keras_transfer.predict` (`cli/predict.py`) and
`keras_transfer.load_export`.

An export is a version folder, an export base, or a run's output folder,
whose latest export is used. Folders are walked recursively as training
walks a class folder (`image_folder.list_images`). Each file's bytes go
through the export's `serving_default` signature, in batches; a file that
cannot be read or decoded, or an image in a format TensorFlow cannot decode
(TIFF, HEIC, ...), is skipped, and the rest are classified. The streams
here carry a `Skipped` in the place of each file passed over, so the caller
says so where it happens (the command line: a warning on stderr).
"""

import dataclasses
import os

from keras_transfer.data import image_folder
from keras_transfer.log import logger


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file or folder passed over; `message` says which and why."""

    message: str


_NOT_REGULAR = "not a regular file (a FIFO, socket or device would never end a read)"


def image_files(paths):
    """Files given by name, and the image files under folders, in order;
    a `Skipped` for what cannot be classified."""
    for path in paths:
        if os.path.isdir(path):
            unsupported, not_regular = [], []
            found = image_folder.list_images(path, unsupported, not_regular)
            if not found and not unsupported and not not_regular:
                yield Skipped(f"skipping {path}: no image files in it")
            yield from found
            for name in unsupported:
                yield Skipped(f"skipping {name}: not a format TensorFlow decodes "
                              "(JPEG, PNG, BMP, GIF or WebP)")
            for name in not_regular:
                yield Skipped(f"skipping {name}: {_NOT_REGULAR}")
        elif image_folder.is_special_file(path):
            yield Skipped(f"skipping {path}: {_NOT_REGULAR}")
        elif os.path.exists(path):
            yield path  # Named explicitly: tried whatever its extension.
        else:
            yield Skipped(f"skipping {path}: no such file or folder")


def _score(value):
    """A probability for JSON: a diverged model's NaN becomes null (JSON has
    no NaN, and a JSON line with one breaks every strict reader)."""
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def _reason(message):
    """The op's own words from a TensorFlow error, without graph locations."""
    lines = [line.strip() for line in message.splitlines()]
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    useful = [line for line in lines if line and not line.startswith(noise)]
    return useful[-1][:200] if useful else message[:200]


class Predictor:
    """The `serving_default` signature of an export, answering per file."""

    def __init__(self, model_dir):
        import tensorflow as tf

        from keras_transfer.serving import export

        self.path = export.latest_export(model_dir)
        self._errors = (tf.errors.InvalidArgumentError,)
        # Keep the loaded object: its signatures need its variables alive.
        self._loaded = tf.saved_model.load(self.path)
        self._serve = self._loaded.signatures["serving_default"]
        self._constant = tf.constant

    def __call__(self, blobs):
        """A record per encoded image; raises InvalidArgumentError if any fails."""
        outputs = self._serve(image_bytes=self._constant(blobs))
        if "top_k_labels" in outputs:
            labels = outputs["top_k_labels"].numpy()
            scores = outputs["top_k_scores"].numpy()
        else:  # An export of an earlier version: probabilities and labels.txt.
            labels, scores = self._top_k(outputs["probabilities"].numpy())
        return [
            {"label": row_labels[0].decode("utf-8"), "score": _score(row_scores[0]),
             "top_k": [{"label": label.decode("utf-8"), "score": _score(score)}
                       for label, score in zip(row_labels, row_scores)]}
            for row_labels, row_scores in zip(labels, scores)
        ]

    def _top_k(self, probabilities, k=5):
        import numpy as np

        with open(os.path.join(self.path, "assets", "labels.txt"), "rb") as handle:
            names = np.asarray(handle.read().splitlines(), dtype=object)
        top = np.argsort(-probabilities, axis=1)[:, :min(k, probabilities.shape[1])]
        return names[top], np.take_along_axis(probabilities, top, axis=1)

    def _one_by_one(self, paths, blobs):
        # One bad file fails its whole batch; retrying file by file keeps
        # the good ones and names the bad one.
        for path, blob in zip(paths, blobs):
            try:
                yield path, self([blob])[0]
            except self._errors as error:
                yield Skipped(f"skipping {path}: not a decodable JPEG, PNG, BMP, GIF or "
                              f"WebP image ({_reason(error.message)})")

    def predict_batch(self, paths, blobs):
        """(path, record) pairs for the decodable images of one batch, a
        `Skipped` for each of the others."""
        try:
            yield from zip(paths, self(blobs))
        except self._errors:
            yield from self._one_by_one(paths, blobs)

    def predict_files(self, paths, batch_size=32):
        """A record per image of `paths` (files or folders) that could be
        classified; what was skipped is logged as a warning."""
        records = []
        for item in predict_files(self, image_files(paths), batch_size):
            if isinstance(item, Skipped):
                logger.warning(item.message)
            else:
                records.append(item)
        return records


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        return Skipped(f"skipping {path}: cannot read it ({error.strerror or error})")


def _batches(paths, batch_size):
    """(paths, encoded bytes) lists of up to `batch_size` readable files;
    a `Skipped` as soon as one is found."""
    batch_paths, batch_blobs = [], []
    for path in paths:
        blob = path if isinstance(path, Skipped) else _read(path)
        if isinstance(blob, Skipped):
            yield blob
            continue
        batch_paths.append(path)
        batch_blobs.append(blob)
        if len(batch_blobs) == batch_size:
            yield batch_paths, batch_blobs
            batch_paths, batch_blobs = [], []
    if batch_blobs:
        yield batch_paths, batch_blobs


def predict_files(predictor, paths, batch_size):
    """Yields a JSON-ready record per image that could be read and decoded,
    and the `Skipped` of `paths` (from `image_files`) and of the others."""
    for batch in _batches(paths, batch_size):
        if isinstance(batch, Skipped):
            yield batch
            continue
        for item in predictor.predict_batch(*batch):
            yield item if isinstance(item, Skipped) else {"path": item[0], **item[1]}

