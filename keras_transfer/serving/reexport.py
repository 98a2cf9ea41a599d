"""Re-exporting a finished run from its best checkpoint, without retraining.

The classifier is rebuilt from the run folder (`models/finished_run.py`) and
the next export version is written, for example with another decode size
(`image_size`) or a TFLite model.
"""

import os

from keras_transfer import config as config_lib
from keras_transfer.models import finished_run
from keras_transfer.serving import export, model_card


def reexport(run_dir, *, image_size=None, export_tflite=False):
    """Writes the run's next export version; returns its path.

    Args:
      image_size: square size encoded images are decoded to (default: the
        size the run trained at). The model still resizes to its own size.
    """
    run = finished_run.read_run(run_dir)
    checkpoint = finished_run.best_checkpoint(run_dir, run)
    classifier = finished_run.rebuild_classifier(run, checkpoint)
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
