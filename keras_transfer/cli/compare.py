"""`python -m keras_transfer.compare RUN_DIR... [--output=comparison.png]`:
finished runs side by side, a table on stdout and a bar chart
(`evaluation/compare.py`). Reads only each run's metrics.json; no TensorFlow."""

import sys

from absl import app, flags

from keras_transfer.evaluation import compare

FLAGS = flags.FLAGS


def define_flags():
    """Flags of `python -m keras_transfer.compare` (idempotent)."""
    if "output" in FLAGS:
        return
    flags.DEFINE_string("output", "comparison.png", "Bar chart PNG to write.")


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("name at least one run folder (RUN_DIR...) to compare")
    try:
        rows = compare.compare(argv[1:], FLAGS.output)
    except compare.CompareError as error:
        sys.exit(f"keras_transfer.compare: error: {error}")
    print(compare.format_table(rows))
    print(f"bar chart written to {FLAGS.output}")


def run_cli():
    """Entry point of the `keras-transfer-compare` console script."""
    define_flags()
    app.run(main)
