"""`model_card.json`: what an export is, written into its `assets/`.

A SavedModel folder copied to a serving host loses the run folder around it;
the card keeps what a deployer needs to know without reading our code: the
backbone and where its weights came from, the input it expects, the classes,
the test metrics, the exact training settings and the versions involved.
"""

import datetime
import json
import platform

FILE = "model_card.json"
FORMAT = "keras_transfer.model_card/1"


def versions():
    """Versions of what runs the export (TensorFlow matters to TF Serving)."""
    import keras
    import tensorflow as tf

    import keras_transfer

    return {"keras_transfer": keras_transfer.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "python": platform.python_version()}


def from_record(run):
    """The run-specific part of a card, from a run's `schema.RunRecord`."""
    card = {
        "backbone": run.config["model"],
        "weights": run.weights,
        "dataset": run.dataset,
        "test_metrics": run.test,
        "training_config": run.config,
        "trained_with": run.versions,
    }
    if run.distillation:  # A student: the model it learned from.
        teacher = run.distillation["teacher"]
        card["distilled_from"] = {key: teacher[key] for key in (
            "run_dir", "model", "parameters", "test")}
    return card


def complete(card, *, class_names, image_size, channels, signatures, max_megapixels):
    """`card` plus what the export itself knows, in a stable key order."""
    head = {
        "format": FORMAT,
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "image_size": image_size,
        "channels": channels,
        "max_megapixels": max_megapixels,
        "input": ("encoded JPEG/PNG/BMP/GIF/WebP bytes (serving_default), or 0-255 "
                  "pixels of any size as float32 (serving_pixels) or uint8 "
                  "(serving_pixels_uint8); decoding, resizing and the "
                  "backbone's preprocessing run in the graph"),
        "signatures": signatures,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "versions": versions(),
    }
    # What the export measured wins over a caller's card of the same name.
    return {**head, **{key: value for key, value in (card or {}).items() if key not in head}}


def write(path, card):
    # One JSON document, readable by people and by any JSON parser.
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(card, handle, indent=2, sort_keys=False)
        handle.write("\n")
