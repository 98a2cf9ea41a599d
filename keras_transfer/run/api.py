"""The Python API, for notebooks and scripts: what the command line does,
called with keyword arguments.

    import keras_transfer
    result = keras_transfer.train(model="vgg16", dataset="photos/",
                                  output_dir="runs/photos")
    result.test_accuracy, result.export_path
    predictor = keras_transfer.load_export(result.export_path)
    predictor.predict_files(["photos/new.jpg"])
    model = keras_transfer.load_keras_model(result.export_path)  # A keras.Model.
"""

import dataclasses
import importlib
import os
from typing import Any, Optional

import keras

from keras_transfer import config as config_lib
from keras_transfer.run import execute
from keras_transfer.serving import export, predictor

# Settings the command line takes as comma-separated lists; the config holds
# them as tuples, so a list, a tuple or one comma-separated string will do.
_LIST_SETTINGS = ("classes", "source_classes", "augment")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """A finished run.

    Attributes:
      metrics: what the run wrote to `metrics.json`.
      model: the trained `keras.Model` as exported (preprocessing inside: it
        takes pixels 0-255).
      output_dir: the run's folder.
      export_path: the SavedModel version folder, or None with `export=False`.
    """

    metrics: dict
    model: Any
    output_dir: str
    export_path: Optional[str]

    @property
    def test_accuracy(self):
        """The exported model's accuracy on the test split."""
        return self.metrics["test"]["accuracy"]


def _as_tuple(value):
    if value is None or isinstance(value, tuple):
        return value
    if isinstance(value, str):
        return tuple(part for part in value.split(",") if part) or None
    return tuple(str(part) for part in value)


def config_from_settings(**settings):
    """The `RunConfig` of keyword settings named as the command line's flags.

    Raises `ConfigError` for an unknown setting or a bad value, in the
    command line's words, before anything is loaded or written.
    """
    known = {field.name for field in dataclasses.fields(config_lib.RunConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise config_lib.ConfigError(
            f"train() takes the command line's settings by their flag names. "
            f"Received unknown: {', '.join(unknown)}")
    for name in _LIST_SETTINGS:
        if name in settings:
            settings[name] = _as_tuple(settings[name])
    if settings.get("augment") is None and "augment" in settings:
        settings["augment"] = ()
    return config_lib.RunConfig(**settings)


def train(**settings):
    """Runs one transfer-learning run, as `python -m keras_transfer.main`
    does with the same settings; returns a `TrainResult`.

    Progress goes to the `keras_transfer` logger (`logging`), and Keras'
    progress bars follow `verbose` (default 2: a line per epoch).
    """
    finished = execute.run_to_model(config_from_settings(**settings))
    metrics = finished.metrics
    return TrainResult(metrics=metrics, model=finished.classifier,
                       output_dir=metrics["config"]["output_dir"],
                       export_path=(metrics.get("export") or {}).get("path"))


def load_export(path):
    """A `Predictor` of an export: a version folder, an export base, or a
    run's output folder (its latest export). `predictor.predict_files(paths)`
    classifies files and folders; `predictor(list_of_encoded_images)` bytes."""
    return predictor.Predictor(path)


def load_keras_model(path):
    """The exported classifier as a `keras.Model` (pixels 0-255 of any size
    in, probabilities out), from an export's `model.keras`: that file, a
    version folder, an export base, or a run's output folder (its latest
    export). Loaded in Keras' safe mode; the model's own layers are
    registered by importing `keras_transfer.models.classifier`, done here."""
    # Keras finds registered classes only once their module is imported; a
    # plain `keras.saving.load_model` needs the same import first.
    importlib.import_module("keras_transfer.models.classifier")
    file = path
    if os.path.isdir(path):
        file = os.path.join(export.latest_export(path), export.KERAS_FILE)
        if not os.path.isfile(file):
            raise FileNotFoundError(
                f"{file} does not exist: the export was written before exports held "
                f"one (`python -m keras_transfer.export --run_dir=RUN` writes a new "
                f"version with it). Received: path={path!r}")
    return keras.saving.load_model(file)
