"""What a Keras user reaches for: the export's `model.keras`, and the
SavedModel as a layer of another Keras model (`keras.layers.TFSMLayer`).

Both are loaded in fresh processes, as a user's script would: Keras knows the
classifier's own layers only once their module is imported.
"""

import io
import json
import os
import shutil
import zipfile

import h5py
import keras
import numpy as np
import pytest

import keras_transfer
import test_export
from conftest import run_python
from keras_transfer import disk_space
from keras_transfer.serving import export

# The 1-channel VGG16 classifier (custom layers included) and its export.
gray = test_export.gray

# argv: how (`api` or `plain`), version folder, export base, pixels (.npy).
LOAD_CODE = r"""
import json
import sys

import keras
import numpy as np
import tensorflow as tf

how, version, base, pixels_file = sys.argv[1:]
pixels = np.load(pixels_file)
results = {}
if how == "api":
    # Fresh: nothing of the classifier registered yet.
    try:
        keras.saving.load_model(version + "/model.keras")
    except Exception as error:
        results["unregistered"] = f"{type(error).__name__}: {error}"
    import keras_transfer

    models = {"file": keras_transfer.load_keras_model(version + "/model.keras"),
              "version": keras_transfer.load_keras_model(version),
              "base": keras_transfer.load_keras_model(base)}
else:
    import keras_transfer.models.classifier  # Registers the classifier's layers.

    models = {"plain": keras.saving.load_model(version + "/model.keras")}  # Safe mode.
served = tf.saved_model.load(version).signatures["serving_pixels"](pixels=tf.constant(pixels))
for name, model in models.items():
    results[name] = model.predict_on_batch(pixels).tolist()
results["served"] = served["probabilities"].numpy().tolist()
results["layers"] = sorted({type(layer).__name__ for layer in models[next(iter(models))]
                            ._flatten_layers()})
print(json.dumps(results))
"""

# The README's snippet: no keras_transfer import at all.
TFSM_CODE = r"""
import json
import sys

import keras
import numpy as np

version, pixels_file = sys.argv[1:]
inputs = keras.Input((32, 32, 1))
outputs = keras.layers.TFSMLayer(version, call_endpoint="serving_pixels",
                                 trainable=False)(inputs)
model = keras.Model(inputs, outputs["probabilities"])
print(json.dumps({
    "outputs": sorted(outputs),
    "probabilities": model.predict_on_batch(np.load(pixels_file)).tolist(),
    "trainable_weights": len(model.trainable_weights),
    "modules": sorted(name for name in sys.modules if name.startswith("keras_transfer")),
}))
"""


def _pixels(gray, tmp_path, size=None):
    """The digits as float32 0-255 pixels (8x8, or blown up to `size`)."""
    images = gray["images"][..., None].astype(np.float32)
    if size:
        images = np.repeat(np.repeat(images, size // 8, axis=1), size // 8, axis=2)
    path = tmp_path / "pixels.npy"
    np.save(path, images)
    return images, str(path)


def _run(code, *args):
    result = run_python(["-c", code, *args])
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_model_keras_is_written_inside_the_version_folder(gray):
    with zipfile.ZipFile(os.path.join(gray["path"], export.KERAS_FILE)) as archive:
        assert {"config.json", "metadata.json", "model.weights.h5"} <= set(archive.namelist())


def test_model_keras_is_the_inference_model_of_a_trained_one(tmp_path):
    keras.utils.set_random_seed(5)
    model = test_export._small_classifier(3)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(np.zeros((4, 16, 16, 1)), np.eye(3)[[0, 1, 2, 0]], verbose=0)
    path = export.export_model(model, str(tmp_path), ["a", "b", "c"], image_size=16,
                               channels=1)
    with zipfile.ZipFile(os.path.join(path, export.KERAS_FILE)) as archive:
        config = json.loads(archive.read("config.json"))
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
            groups = list(weights)
    # No optimizer slots, nothing to compile: the trained weights alone.
    assert not config.get("compile_config")
    assert "optimizer" not in groups
    loaded = keras.saving.load_model(os.path.join(path, export.KERAS_FILE))
    pixels = np.random.default_rng(5).uniform(0, 255, (2, 16, 16, 1)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_on_batch(pixels), model.predict_on_batch(pixels))


def test_load_keras_model_loads_in_a_fresh_process_and_answers_as_served(gray, tmp_path):
    pixels, pixels_file = _pixels(gray, tmp_path)
    results = _run(LOAD_CODE, "api", gray["path"], gray["base"], pixels_file)
    # Without the import, Keras cannot know the layers: why the API imports it.
    assert "Could not locate class 'ToRGB'" in results["unregistered"], (
        results["unregistered"][-600:])
    assert {"ToRGB", "BackbonePreprocessing"} <= set(results["layers"])
    assert "Lambda" not in results["layers"]  # Nothing safe mode would refuse.
    reference = gray["model"].predict_on_batch(pixels)
    np.testing.assert_allclose(results["served"], reference, rtol=0,
                               atol=test_export.TOLERANCE)
    for name in ("file", "version", "base"):
        np.testing.assert_allclose(results[name], results["served"], rtol=0,
                                   atol=test_export.TOLERANCE, err_msg=name)


def test_plain_load_model_after_importing_the_classifier_module(gray, tmp_path):
    _, pixels_file = _pixels(gray, tmp_path)
    results = _run(LOAD_CODE, "plain", gray["path"], gray["base"], pixels_file)
    np.testing.assert_allclose(results["plain"], results["served"], rtol=0,
                               atol=test_export.TOLERANCE)


def test_tfsm_layer_serves_inside_another_keras_model(gray, tmp_path):
    pixels, pixels_file = _pixels(gray, tmp_path, size=32)
    results = _run(TFSM_CODE, gray["path"], pixels_file)
    assert results["outputs"] == ["label", "probabilities", "score", "top_k_labels",
                                  "top_k_scores"]
    assert results["modules"] == []
    assert results["trainable_weights"] == 0
    np.testing.assert_allclose(results["probabilities"], gray["model"].predict_on_batch(pixels),
                               rtol=0, atol=test_export.TOLERANCE)


def test_an_export_without_model_keras_is_named(gray, tmp_path):
    old = tmp_path / "export" / "1"
    shutil.copytree(gray["path"], old)
    os.remove(old / export.KERAS_FILE)
    with pytest.raises(FileNotFoundError, match="model.keras does not exist: the export was written before"):
        keras_transfer.load_keras_model(str(tmp_path))


@pytest.mark.parametrize("tflite, copies", [(False, 2), (True, 3)])
def test_the_disk_space_asked_for_counts_model_keras(monkeypatch, tmp_path, tflite, copies):
    model = test_export._small_classifier(3)
    asked = []

    def require(folder, what, needed):
        asked.append(needed)
        raise OSError("stop before writing")

    monkeypatch.setattr(disk_space, "require", require)
    with pytest.raises(OSError, match="stop before writing"):
        export.export_model(model, str(tmp_path), ["a", "b", "c"], image_size=16,
                            channels=1, tflite=tflite)
    assert asked == [copies * disk_space.weights_bytes(model)]


def test_a_failed_model_keras_leaves_no_version(monkeypatch, tmp_path):
    def fail(model, path):
        raise OSError("writing model.keras failed on purpose")

    monkeypatch.setattr(export, "_write_keras_file", fail)
    with pytest.raises(OSError, match="on purpose"):
        export.export_model(test_export._small_classifier(3), str(tmp_path), ["a", "b", "c"],
                            image_size=16, channels=1)
    assert os.listdir(tmp_path) == []
