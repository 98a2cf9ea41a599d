"""`python -m keras_transfer.rank --dataset=... --models=vgg16,resnet50`: ranks
candidate bases for a task before training any (`run/rank.py`). Dataset and
weights flags are the main command's."""

import json
import os
import sys

from absl import app, flags

from keras_transfer import config as config_lib, tf_quiet
from keras_transfer.cli import main as main_cli
from keras_transfer.evaluation import transferability
from keras_transfer.log import show_on_console
from keras_transfer.models import backbones

FLAGS = flags.FLAGS


def define_flags():
    main_cli.define_flags()
    if "models" in FLAGS:
        return
    flags.DEFINE_list("models", ["vgg16", "resnet50"], "Backbones to rank.")
    flags.DEFINE_list("base_layers", ["auto"], "Where to cut each base: auto (where a run "
                      "cuts it: the block below the top for a source-task base), top (its output), "
                      "a block name of that backbone (block4, conv4: the block's output) "
                      "or a layer name; names a backbone lacks are skipped for it.")
    flags.DEFINE_list("estimators", ["logme", "hscore", "nleep"],
                      "Transferability estimators; the table is sorted by the first.")
    flags.DEFINE_string("ranking_output", None, "Also write the ranking as JSON here.")


def _check_output(path):
    """Before minutes of scoring, not after: the folder the JSON goes into."""
    folder = os.path.dirname(os.path.abspath(path)) if path else None
    if folder and not os.path.isdir(folder):
        raise config_lib.ConfigError(
            f"ranking_output must be a file in an existing folder. Received: "
            f"ranking_output={path!r}")


def _check_names(models, estimators):
    if not models:
        raise config_lib.ConfigError("models must name at least one backbone. Received: models=")
    for name in models:
        backbones.get(name)
    unknown = [e for e in estimators if e not in transferability.ESTIMATORS]
    if unknown or not estimators:
        raise config_lib.ConfigError(
            f"estimators must be among {sorted(transferability.ESTIMATORS)}. "
            f"Received: estimators={','.join(estimators)}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = main_cli.config_from_flags()
        show_on_console(config.verbose)
        _check_names(FLAGS.models, FLAGS.estimators)
        _check_output(FLAGS.ranking_output)
        tf_quiet.import_tensorflow()  # Without its start-up lines on stderr.
        from keras_transfer.run import rank  # TensorFlow loads only for valid flags.

        # Data the run could not use (a broken folder, unknown classes) is
        # refused here in the same words as by the main command.
        rows = rank.rank_candidates(config, FLAGS.models, FLAGS.base_layers, FLAGS.estimators)
        if not rows:
            raise config_lib.ConfigError(
                "no candidate could be scored: none of the models has any of the "
                f"base_layers. Received: models={','.join(FLAGS.models)}, "
                f"base_layers={','.join(FLAGS.base_layers)}")
    except (config_lib.ConfigError, ValueError) as error:
        sys.exit(f"keras_transfer.rank: error: {error}")
    print(rank.table(rows, FLAGS.estimators))
    for caveat in rank.caveats(rows, FLAGS.estimators):
        print(f"note: {caveat}")
    if FLAGS.ranking_output:
        with open(FLAGS.ranking_output, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


def run_cli():
    """Entry point of the `keras-transfer-rank` console script."""
    define_flags()
    app.run(main)
