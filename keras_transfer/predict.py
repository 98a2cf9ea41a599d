"""Command line: `python -m keras_transfer.predict --model_dir=DIR FILES_OR_FOLDERS...`

Classifies image files with an export (a version folder, an export base, or a
run's output folder, whose latest export is used) and prints one JSON line per
image: `{"path", "label", "score", "top_k": [{"label", "score"}, ...]}`.
Folders are walked recursively as training walks a class folder
(`image_folder.list_images`: .jpg/.jpeg/.png/.bmp/.gif/.webp, hidden files
such as macOS' `._photo.jpg` passed over). Each file's bytes go through the
export's `serving_default` signature, in batches; a file that cannot be read
or decoded, or an image in a format TensorFlow cannot decode (TIFF, HEIC, ...),
is skipped with a warning on stderr.

Exit status: 0 when every image was classified, 1 when some were skipped.
"""

import json
import os
import sys

from absl import app, flags, logging

from keras_transfer import image_folder

FLAGS = flags.FLAGS


def warn(message):
    print(f"keras_transfer.predict: warning: {message}", file=sys.stderr, flush=True)


def image_files(paths, warn=warn):
    """Files given by name, and the image files under folders, in order."""
    for path in paths:
        if os.path.isdir(path):
            unsupported = []
            found = image_folder.list_images(path, unsupported)
            if not found and not unsupported:
                warn(f"skipping {path}: no image files in it")
            yield from found
            for name in unsupported:
                warn(f"skipping {name}: not a format TensorFlow decodes "
                     "(JPEG, PNG, BMP, GIF or WebP)")
        elif os.path.exists(path):
            yield path  # Named explicitly: tried whatever its extension.
        else:
            warn(f"skipping {path}: no such file or folder")


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

        from keras_transfer import export

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

    def _one_by_one(self, paths, blobs, warn):
        # One bad file fails its whole batch; retrying file by file keeps
        # the good ones and names the bad one.
        for path, blob in zip(paths, blobs):
            try:
                yield path, self([blob])[0]
            except self._errors as error:
                warn(f"skipping {path}: not a decodable JPEG, PNG, BMP, GIF or WebP image "
                     f"({_reason(error.message)})")

    def predict_batch(self, paths, blobs, warn=warn):
        """(path, record) pairs for the decodable images of one batch."""
        try:
            yield from zip(paths, self(blobs))
        except self._errors:
            yield from self._one_by_one(paths, blobs, warn)


def _read(path, warn):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        warn(f"skipping {path}: cannot read it ({error.strerror or error})")
        return None


def _batches(paths, batch_size, warn):
    """(paths, encoded bytes) lists of up to `batch_size` readable files."""
    batch_paths, batch_blobs = [], []
    for path in paths:
        blob = _read(path, warn)
        if blob is None:
            continue
        batch_paths.append(path)
        batch_blobs.append(blob)
        if len(batch_blobs) == batch_size:
            yield batch_paths, batch_blobs
            batch_paths, batch_blobs = [], []
    if batch_blobs:
        yield batch_paths, batch_blobs


def predict_files(predictor, paths, batch_size, warn=warn):
    """Yields a JSON-ready record per image that could be read and decoded."""
    for batch_paths, blobs in _batches(paths, batch_size, warn):
        for path, record in predictor.predict_batch(batch_paths, blobs, warn):
            yield {"path": path, **record}


def define_flags():
    """Defines the flags (idempotent; `batch_size` is shared with main.py)."""
    if "model_dir" in FLAGS:
        return
    flags.DEFINE_string("model_dir", None, "An export version folder, an export "
                        "base, or a run's output folder (its latest export).")
    if "batch_size" not in FLAGS:
        flags.DEFINE_integer("batch_size", 32, "Images per call of the signature.")


def main(argv):
    if not FLAGS.model_dir:
        raise app.UsageError("--model_dir is required: an export or a run's output folder")
    if len(argv) < 2:
        raise app.UsageError("name at least one image file or folder to classify")
    if FLAGS.batch_size < 1:
        raise app.UsageError(f"batch_size must be >= 1. Received: batch_size={FLAGS.batch_size}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        predictor = Predictor(FLAGS.model_dir)
    except (FileNotFoundError, OSError) as error:
        sys.exit(f"keras_transfer.predict: error: {error}")
    skipped = []

    def warn_and_count(message):
        skipped.append(message)
        warn(message)

    for record in predict_files(predictor, image_files(argv[1:], warn_and_count),
                                FLAGS.batch_size, warn_and_count):
        print(json.dumps(record, ensure_ascii=False), flush=True)
    if skipped:
        sys.exit(1)


def run_cli():
    """Entry point of the `keras-transfer-predict` console script."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run_cli()
