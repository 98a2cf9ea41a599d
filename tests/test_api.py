"""The Python API: `keras_transfer.train(...)` and `keras_transfer.load_export(...)`,
the way a notebook uses them."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import keras_transfer
from conftest import REPO, TINY


def test_train_returns_the_model_metrics_and_export_then_load_export_predicts(
        tmp_path, cache_dir):
    import keras

    output_dir = str(tmp_path / "run")
    result = keras_transfer.train(model="vgg16", dataset="digits", classes=["5", "6"],
                                  phase="both", output_dir=output_dir, cache_dir=cache_dir,
                                  augment=[], **TINY)
    assert isinstance(result, keras_transfer.TrainResult)
    assert result.output_dir == output_dir
    assert isinstance(result.model, keras.Model)
    assert result.metrics["class_names"] == ["5", "6"]
    assert set(result.metrics["phases"]) == {"feature_extraction", "fine_tune"}
    assert result.test_accuracy == result.metrics["test"]["accuracy"]
    assert result.export_path == os.path.join(output_dir, "export", "1")
    assert os.path.isfile(os.path.join(result.export_path, "saved_model.pb"))

    # The model in memory is the exported one: the same answers on the same pixels.
    image = np.full((32, 32, 1), 200, np.uint8)
    image[8:24, 12:20] = 20
    Image.fromarray(image[..., 0]).save(tmp_path / "digit.png")
    predictor = keras_transfer.load_export(output_dir)  # A run's folder will do.
    records = predictor.predict_files([str(tmp_path / "digit.png"),
                                       str(tmp_path / "missing.png")])
    assert [record["path"] for record in records] == [str(tmp_path / "digit.png")]
    in_memory = result.model.predict(image[None].astype("float32"), verbose=0)[0]
    expected = result.metrics["class_names"][int(np.argmax(in_memory))]
    assert records[0]["label"] == expected
    assert records[0]["score"] == pytest.approx(float(np.max(in_memory)), abs=1e-4)


@pytest.mark.parametrize("settings, says", [
    (dict(epochs=-1), "epochs must be >= 0. Received: epochs=-1"),
    (dict(learning_rte=0.1), "Received unknown: learning_rte"),
    (dict(model="vgg17"), "vgg17"),
])
def test_bad_settings_raise_config_error_before_anything_is_written(tmp_path, settings,
                                                                    says):
    output_dir = tmp_path / "run"
    with pytest.raises(keras_transfer.ConfigError, match=None) as raised:
        keras_transfer.train(output_dir=str(output_dir), **settings)
    assert says in str(raised.value)
    assert not output_dir.exists()


def test_import_keras_transfer_does_not_load_tensorflow():
    """The API loads on first use: importing the package (and every command
    line's flag checks) stays fast."""
    code = ("import sys, keras_transfer; keras_transfer.ConfigError; "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr[-2000:]
