"""A finished run's model, read back from its folder: what re-export and
distillation (the teacher) start from.

The run folder has what it takes: `metrics.json` (the settings, class names,
channels, weights source and test metrics) and `checkpoints/` (the best epoch
of each phase). The classifier is rebuilt from the settings and the checkpoint
of the phase the run exported is loaded.
"""

import os

from keras_transfer import outputs, schema
from keras_transfer.checks import ConfigError
from keras_transfer.models import backbones, classifier as model_lib

# The phase whose checkpoint the run exported: the last one that ran.
CHECKPOINT_ORDER = ("semi_supervised", "fine_tune", "multitask", "feature_extraction", "pretrain",
                    "scratch", "distill")


class FinishedRunError(ConfigError):
    """The folder is not a finished run; the message says what is missing."""


def best_checkpoint(run_dir, run=None, flag="run_dir"):
    """The weights the run (a `schema.RunRecord`) exported: the phase the
    safety net kept when it discarded fine-tuning, else fine_tune, else
    multitask (the target's classifier of the joint phase), else
    feature_extraction, else pretrain, else scratch (`--weights=none`), else
    distill (a student)."""
    kept = ((run.safety_net if run else None) or {}).get("exported_phase")
    for phase in ([kept] if kept else []) + list(CHECKPOINT_ORDER):
        path = os.path.join(run_dir, "checkpoints", f"{phase}.weights.h5")
        if os.path.isfile(path):
            return path
    raise FinishedRunError(
        f"{flag} has no checkpoints/{{{','.join(CHECKPOINT_ORDER)}}}.weights.h5 "
        f"to load. Received: {flag}={run_dir!r}")


def read_run(run_dir, flag="run_dir"):
    """The run's `schema.RunRecord`, checked to be a finished run."""
    path = os.path.join(run_dir, schema.METRICS_FILE)
    if not os.path.isfile(path):
        raise FinishedRunError(
            f"{flag} must be the output folder of a finished run (with "
            f"{schema.METRICS_FILE}). Received: {flag}={run_dir!r}")
    outputs.tidy_finished(run_dir)
    metrics = outputs.read_json(path)
    for key in ("config", "class_names", "dataset"):
        if key not in metrics:
            raise FinishedRunError(f"{path} has no {key!r}: not written by a finished run")
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
