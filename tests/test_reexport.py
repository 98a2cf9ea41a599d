"""`python -m keras_transfer.export --run_dir=RUN`: a finished run re-exported
from its best checkpoint answers as its first export did; the model card
describes the run."""

import io
import json
import os
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_digits

from conftest import TINY, run_python
from keras_transfer import config as config_lib
from keras_transfer import schema
from keras_transfer.models import finished_run as run_folder
from keras_transfer.serving import reexport
from keras_transfer.run import execute as run_lib


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, cache_dir, random_vgg16_base):
    """A tiny real run (both phases) with its version 1 export, TFLite included."""
    output_dir = str(tmp_path_factory.mktemp("reexport") / "run")
    config = config_lib.RunConfig(**{**TINY, "output_dir": output_dir, "cache_dir": cache_dir,
                                     "weights": random_vgg16_base, "export_tflite": True,
                                     "max_megapixels": 20.0})  # Carried to serving.
    metrics = run_lib.run(config)
    return output_dir, metrics


def _digit_pngs():
    """Two of each target class (digits 5-9) as PNG bytes."""
    digits = load_digits()
    picks = [int(i) for d in range(5, 10) for i in np.flatnonzero(digits.target == d)[:2]]
    blobs = []
    for image in (digits.images[picks] * 15).astype(np.uint8):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        blobs.append(buffer.getvalue())
    return blobs


def _serve(path, blobs):
    outputs = tf.saved_model.load(path).signatures["serving_default"](
        image_bytes=tf.constant(blobs))
    return {key: value.numpy() for key, value in outputs.items()}


def _card(path):
    with open(os.path.join(path, "assets", "model_card.json"), encoding="utf-8") as handle:
        return json.load(handle)


def test_run_export_carries_a_model_card(finished_run):
    output_dir, metrics = finished_run
    card = _card(os.path.join(output_dir, "export", "1"))
    assert card["backbone"] == "vgg16"
    assert card["class_names"] == ["5", "6", "7", "8", "9"]
    assert card["image_size"] == 32 and card["channels"] == 1
    assert card["max_megapixels"] == 20.0
    assert card["weights"]["kind"] == "file"
    assert card["training_config"] == metrics["config"]
    assert card["test_metrics"]["accuracy"] == metrics["test"]["accuracy"]
    assert card["test_metrics"]["confusion_matrix"] == metrics["test"]["confusion_matrix"]
    assert card["versions"]["tensorflow"] == tf.__version__
    assert card["trained_with"] == metrics["versions"]


def test_run_with_export_tflite_writes_a_matching_tflite_model(finished_run):
    output_dir, _ = finished_run
    folder = os.path.join(output_dir, "export", "1", "tflite")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice.
        interpreter = tf.lite.Interpreter(model_path=os.path.join(folder, "model.tflite"))
    pixels = np.stack([tf.io.decode_png(blob).numpy() for blob in _digit_pngs()])
    pixels = pixels.astype(np.float32)
    served = tf.saved_model.load(os.path.join(output_dir, "export", "1")).signatures[
        "serving_pixels"](pixels=tf.constant(pixels))
    answered = interpreter.get_signature_runner("serving_pixels")(pixels=pixels)
    np.testing.assert_allclose(answered["probabilities"], served["probabilities"].numpy(),
                               rtol=0, atol=1e-5)
    np.testing.assert_array_equal(answered["top_k_labels"], served["top_k_labels"].numpy())
    with open(os.path.join(folder, "labels.txt"), encoding="utf-8") as handle:
        assert handle.read().splitlines() == ["5", "6", "7", "8", "9"]


def test_cli_reexport_answers_as_the_first_export(finished_run):
    output_dir, _ = finished_run
    # Other tests of this module may have added versions before this one.
    versions = [int(name) for name in os.listdir(os.path.join(output_dir, "export"))
                if name.isdigit()]
    result = run_python(["-m", "keras_transfer.export", f"--run_dir={output_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    second = os.path.join(output_dir, "export", str(max(versions) + 1))
    assert f"SavedModel exported to {second}" in result.stdout
    blobs = _digit_pngs()
    first, again = _serve(os.path.join(output_dir, "export", "1"), blobs), _serve(second, blobs)
    np.testing.assert_allclose(again["probabilities"], first["probabilities"],
                               rtol=0, atol=1e-5)
    np.testing.assert_array_equal(again["top_k_labels"], first["top_k_labels"])
    # The images get different answers, so matching them says something.
    assert np.ptp(first["probabilities"], axis=0).max() > 1e-3
    card = _card(second)
    assert card["exported_from"]["checkpoint"] == os.path.join(
        "checkpoints", "fine_tune.weights.h5")
    assert card["training_config"] == _card(os.path.join(output_dir, "export", "1"))[
        "training_config"]


def test_reexport_with_another_decode_size(finished_run):
    output_dir, _ = finished_run
    path = reexport.reexport(output_dir, image_size=48)
    assert _card(path)["image_size"] == 48 and _card(path)["max_megapixels"] == 20.0
    blobs = _digit_pngs()
    outputs = _serve(path, blobs)
    assert outputs["probabilities"].shape == (len(blobs), 5)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, atol=1e-5)
    # 0 is a size like any other, refused: not read as "the run's size".
    versions = os.listdir(os.path.join(output_dir, "export"))
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        reexport.reexport(output_dir, image_size=0)
    assert os.listdir(os.path.join(output_dir, "export")) == versions


def test_best_checkpoint_prefers_the_last_phase(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    for phase in ("pretrain", "feature_extraction", "fine_tune"):
        (checkpoints / f"{phase}.weights.h5").write_bytes(b"")
        assert run_folder.best_checkpoint(str(tmp_path)) == str(
            checkpoints / f"{phase}.weights.h5")
    # The safety net exported phase 1's model: so does the re-export.
    kept = schema.RunRecord(config={}, test={},
                            safety_net={"exported_phase": "feature_extraction"})
    assert run_folder.best_checkpoint(str(tmp_path), kept) == str(
        checkpoints / "feature_extraction.weights.h5")


def test_unfinished_run_is_refused_with_the_reason(tmp_path):
    with pytest.raises(run_folder.FinishedRunError,
                       match="run_dir must be the output folder of a finished run"):
        reexport.reexport(str(tmp_path))
    (tmp_path / "metrics.json").write_text(json.dumps(
        {"config": {}, "class_names": ["a", "b"], "dataset": {"channels": 1}}))
    with pytest.raises(run_folder.FinishedRunError, match="run_dir has no checkpoints"):
        reexport.reexport(str(tmp_path))
    assert not (tmp_path / "export").exists()
