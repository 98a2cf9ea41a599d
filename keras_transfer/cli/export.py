"""`python -m keras_transfer.export --run_dir=RUN`: re-exports a finished run
from its best checkpoint (`serving/reexport.py`) as a new export version."""

import sys

from absl import app, flags, logging

from keras_transfer import tf_quiet
from keras_transfer.log import logger, show_on_console

FLAGS = flags.FLAGS


def define_flags():
    """Flags of `python -m keras_transfer.export` (idempotent)."""
    if "run_dir" in FLAGS:
        return
    flags.DEFINE_string("run_dir", None, "Output folder of a finished run to re-export.")
    if "image_size" not in FLAGS:  # Shared with cli/main.py when both are loaded.
        flags.DEFINE_integer("image_size", None, "Square size encoded images are "
                             "decoded to (default: the run's training size).")
    if "export_tflite" not in FLAGS:
        flags.DEFINE_bool("export_tflite", False, "Also write tflite/model.tflite.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.run_dir:
        raise app.UsageError("--run_dir is required: the output folder of a finished run")
    if not FLAGS["verbosity"].present:  # As cli/main.py: SavedModel internals are noise.
        logging.set_verbosity(logging.WARNING)
    show_on_console()
    tf_quiet.import_tensorflow()  # Without its start-up lines on stderr.
    from keras_transfer.serving import reexport, tflite  # TensorFlow loads here.

    try:
        path = reexport.reexport(FLAGS.run_dir, image_size=FLAGS.image_size,
                                 export_tflite=FLAGS.export_tflite)
    except (ValueError, OSError, tflite.TFLiteError) as error:
        sys.exit(f"keras_transfer.export: error: {error}")
    logger.info(f"SavedModel exported to {path}")


def run_cli():
    """Entry point of the `keras-transfer-export` console script."""
    define_flags()
    app.run(main)
