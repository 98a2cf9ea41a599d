"""Command line: `python -m keras_transfer.predict --model_dir=DIR FILES_OR_FOLDERS...`

Classifies image files with an export (a version folder, an export base, or a
run's output folder, whose latest export is used) and prints one JSON line per
image: `{"path", "label", "score", "top_k": [{"label", "score"}, ...]}`.
Folders are walked recursively as training walks a class folder
(.jpg/.jpeg/.png/.bmp/.gif/.webp, hidden files such as macOS' `._photo.jpg`
passed over). A file that cannot be read or decoded, or an image in a format
TensorFlow cannot decode (TIFF, HEIC, ...), is skipped with a warning on
stderr. The JSON lines on stdout are the command's output, not logging.

Exit status: 0 when every image was classified, 1 when some were skipped.
"""

import json
import sys

from absl import app, flags, logging

from keras_transfer import tf_quiet

FLAGS = flags.FLAGS


def define_flags():
    """Defines the flags (idempotent; `batch_size` is shared with cli/main.py)."""
    if "model_dir" in FLAGS:
        return
    flags.DEFINE_string("model_dir", None, "An export version folder, an export "
                        "base, or a run's output folder (its latest export).")
    if "batch_size" not in FLAGS:
        flags.DEFINE_integer("batch_size", 32, "Images per call of the signature.")


def warn(message):
    print(f"keras_transfer.predict: warning: {message}", file=sys.stderr, flush=True)


def main(argv):
    if not FLAGS.model_dir:
        raise app.UsageError("--model_dir is required: an export or a run's output folder")
    if len(argv) < 2:
        raise app.UsageError("name at least one image file or folder to classify")
    if FLAGS.batch_size < 1:
        raise app.UsageError(f"batch_size must be >= 1. Received: batch_size={FLAGS.batch_size}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    tf_quiet.import_tensorflow()  # Without its start-up lines on stderr.
    from keras_transfer.serving import predictor as predictor_lib  # TensorFlow loads here.

    try:
        predictor = predictor_lib.Predictor(FLAGS.model_dir)
    except (FileNotFoundError, OSError) as error:
        sys.exit(f"keras_transfer.predict: error: {error}")
    skipped = 0
    files = predictor_lib.image_files(argv[1:])
    for item in predictor_lib.predict_files(predictor, files, FLAGS.batch_size):
        if isinstance(item, predictor_lib.Skipped):
            skipped += 1
            warn(item.message)
        else:
            print(json.dumps(item, ensure_ascii=False), flush=True)
    if skipped:
        sys.exit(1)


def run_cli():
    """Entry point of the `keras-transfer-predict` console script."""
    define_flags()
    app.run(main)
