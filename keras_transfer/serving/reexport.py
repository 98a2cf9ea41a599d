"""Re-exporting a finished run from its best checkpoint, without retraining.

The run folder has what it takes: `metrics.json` (the settings, class names,
channels, weights source and test metrics) and `checkpoints/` (the best epoch
of each phase). The classifier is rebuilt from the settings, the checkpoint of
the last phase that ran is loaded, and the next export version is written,
for example with another decode size (`image_size`) or a TFLite model.
"""

import os

from keras_transfer import config as config_lib, outputs, schema
from keras_transfer.models import backbones, classifier as model_lib
from keras_transfer.serving import export, model_card

# The phase whose checkpoint the run exported: the last one that ran.
CHECKPOINT_ORDER = ("fine_tune", "feature_extraction", "pretrain", "scratch")


class ReexportError(ValueError):
    """The folder is not a finished run; the message says what is missing."""


def best_checkpoint(run_dir, run=None):
    """The weights the run (a `schema.RunRecord`) exported: the phase the
    safety net kept when it discarded fine-tuning, else fine_tune, else
    feature_extraction, else pretrain, else scratch (`--weights=none`)."""
    kept = ((run.safety_net if run else None) or {}).get("exported_phase")
    for phase in ([kept] if kept else []) + list(CHECKPOINT_ORDER):
        path = os.path.join(run_dir, "checkpoints", f"{phase}.weights.h5")
        if os.path.isfile(path):
            return path
    raise ReexportError(
        "run_dir has no checkpoints/{fine_tune,feature_extraction,pretrain,scratch}"
        ".weights.h5 "
        f"to export. Received: run_dir={run_dir!r}"
    )


def read_run(run_dir):
    """The run's `schema.RunRecord`, checked to be a finished run."""
    path = os.path.join(run_dir, schema.METRICS_FILE)
    if not os.path.isfile(path):
        raise ReexportError(
            f"run_dir must be the output folder of a finished run (with "
            f"{schema.METRICS_FILE}). Received: run_dir={run_dir!r}"
        )
    outputs.tidy_finished(run_dir)
    metrics = outputs.read_json(path)
    for key in ("config", "class_names", "dataset"):
        if key not in metrics:
            raise ReexportError(f"{path} has no {key!r}: not written by a finished run")
    return schema.RunRecord.from_dict(metrics)


def rebuild_classifier(run, checkpoint):
    """The run's classifier with the checkpoint's weights.

    Built in float32 whatever precision the run trained in: serving on CPU
    gains nothing from bfloat16 and would lose accuracy.
    """
    config = run.config
    classifier = model_lib.build_classifier(
        backbones.get(config["model"]), len(run.class_names),
        image_size=config["image_size"], channels=run.dataset["channels"],
        dropout=config["dropout"], l2=config["l2"], base_weights=None,
        base_layer=config.get("base_layer", "top"),  # Runs before --base_layer: whole.
    )
    classifier.load_weights(checkpoint)
    return classifier


def reexport(run_dir, *, image_size=None, export_tflite=False):
    """Writes the run's next export version; returns its path.

    Args:
      image_size: square size encoded images are decoded to (default: the
        size the run trained at). The model still resizes to its own size.
    """
    run = read_run(run_dir)
    checkpoint = best_checkpoint(run_dir, run)
    classifier = rebuild_classifier(run, checkpoint)
    card = model_card.from_record(run)
    card["exported_from"] = {"run_dir": os.path.abspath(run_dir),
                             "checkpoint": os.path.relpath(checkpoint, run_dir),
                             "re_export": True}
    return export.export_model(
        classifier, os.path.join(run_dir, "export"), list(run.class_names),
        image_size=run.config["image_size"] if image_size is None else image_size,
        channels=run.dataset["channels"], card=card, tflite=export_tflite,
        # Runs from before the limit was recorded: the default.
        max_megapixels=run.config.get("max_megapixels",
                                             config_lib.RunConfig.max_megapixels),
    )
