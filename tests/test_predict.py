"""`python -m keras_transfer.predict`: a JSON line per image, bad files
skipped with a warning, folders walked, a run's latest export found."""

import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import REPO, run_python
from keras_transfer.serving import export
from keras_transfer.serving import predictor as predict

CLASSES = ["circle", "square", "triangle"]


def _png(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder whose export/ holds versions 1 and 2 of a tiny RGB model
    (version 2 answers differently, so using the latest one is checked)."""
    folder = tmp_path_factory.mktemp("predict") / "run"
    for seed in (5, 6):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((None, None, 3), name="pixels")
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.Conv2D(8, 3, activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
        export.export_model(model, str(folder / "export"), CLASSES, image_size=16, channels=3)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Good PNG/JPEG/WebP files in nested folders, plus a corrupt one, a
    broken link, a TIFF, and hidden and text files the folder walk must
    pass over, as training's does."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    (folder / "nested" / "deeper").mkdir(parents=True)
    good = []
    for index, relative in enumerate(["a.png", "b.PNG", "nested/c.png",
                                      "nested/deeper/d.jpg", "nested/e.png", "g.webp"]):
        pixels = rng.integers(0, 256, (12 + index, 10, 3), dtype=np.uint8)
        path = folder / relative
        if relative.endswith(".jpg"):
            path.write_bytes(tf.io.encode_jpeg(pixels).numpy())
        elif relative.endswith(".webp"):
            Image.fromarray(pixels).save(path, format="WEBP", lossless=True)
        else:
            path.write_bytes(_png(pixels))
        good.append(str(path))
    (folder / "nested" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "nested" / "gone.png").symlink_to(folder / "missing-target.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS' shadow.
    (folder / ".hidden.png").write_bytes(_png(np.zeros((4, 4, 3), np.uint8)))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "scan.tif")
    return folder, good


def _direct(path, files):
    """What the export's serving_default answers for each file on its own."""
    serve = tf.saved_model.load(path).signatures["serving_default"]
    answers = {}
    for name in files:
        with open(name, "rb") as handle:
            outputs = serve(image_bytes=tf.constant([handle.read()]))
        answers[name] = (outputs["label"].numpy()[0].decode(),
                         outputs["top_k_scores"].numpy()[0])
    return answers


def _split(stream):
    """(what was answered, the messages of what was skipped), in order."""
    items = list(stream)
    return ([item for item in items if not isinstance(item, predict.Skipped)],
            [item.message for item in items if isinstance(item, predict.Skipped)])


def test_folder_walk_finds_image_files_only(images):
    folder, good = images
    found, warnings = _split(predict.image_files([str(folder), str(folder / "nope.png")]))
    names = sorted(os.path.relpath(path, folder) for path in found)
    assert names == sorted(["a.png", "b.PNG", "nested/c.png", "nested/deeper/d.jpg",
                            "nested/e.png", "g.webp", "nested/bad.png", "nested/gone.png"])
    assert warnings == [
        f"skipping {folder / 'scan.tif'}: not a format TensorFlow decodes "
        "(JPEG, PNG, BMP, GIF or WebP)",
        f"skipping {folder / 'nope.png'}: no such file or folder"]
    (folder / "empty").mkdir(exist_ok=True)
    assert _split(predict.image_files([str(folder / "empty")])) == (
        [], [f"skipping {folder / 'empty'}: no image files in it"])


def test_special_files_are_skipped_not_opened(tmp_path):
    """A FIFO would block `predict` forever: named or found in a folder, it
    is skipped with its reason, and the images beside it are answered."""
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png(np.zeros((4, 4, 3), np.uint8)))
    fifo = folder / "pipe.png"
    os.mkfifo(fifo)
    found, warnings = _split(predict.image_files([str(folder), str(fifo)]))
    assert found == [str(folder / "a.png")]
    assert warnings == [f"skipping {fifo}: not a regular file (a FIFO, socket or device "
                        "would never end a read)"] * 2


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_bad_files_are_skipped_and_the_rest_answered(run_dir, images, batch_size):
    folder, good = images
    predictor = predict.Predictor(str(run_dir))
    assert predictor.path == str(run_dir / "export" / "2")
    records, warnings = _split(predict.predict_files(
        predictor, predict.image_files([str(folder)]), batch_size))

    assert sorted(record["path"] for record in records) == sorted(good)
    assert len(warnings) == 3  # bad.png, gone.png and scan.tif.
    # TensorFlow's own reason, without its graph locations.
    assert any("nested/bad.png: not a decodable" in w and "(Invalid PNG" in w
               and "Graph execution" not in w for w in warnings), warnings
    assert any("nested/gone.png: cannot read it" in w for w in warnings), warnings
    direct = _direct(predictor.path, good)
    for record in records:
        label, scores = direct[record["path"]]
        assert record["label"] == label == record["top_k"][0]["label"]
        assert sorted(entry["label"] for entry in record["top_k"]) == CLASSES
        top_scores = [entry["score"] for entry in record["top_k"]]
        assert top_scores == sorted(top_scores, reverse=True)
        np.testing.assert_allclose([entry["score"] for entry in record["top_k"]], scores,
                                   rtol=0, atol=1e-6)
        assert record["score"] == record["top_k"][0]["score"]


def test_cli_prints_json_lines_for_a_run_folder(run_dir, images):
    folder, good = images
    result = run_python(["-m", "keras_transfer.predict", f"--model_dir={run_dir}",
                         "--batch_size=2", str(folder / "nested"), good[0]])
    assert result.returncode == 1, result.stderr[-3000:]  # Some files were skipped.
    lines = result.stdout.strip().splitlines()
    records = [json.loads(line) for line in lines]
    # A folder's files in path order (as training lists them); then the next argument.
    assert [record["path"] for record in records] == [good[2], good[3], good[4], good[0]]
    assert all(set(record) == {"path", "label", "score", "top_k"} for record in records)
    assert all(len(record["top_k"]) == 3 for record in records)
    direct = _direct(str(run_dir / "export" / "2"), good)
    assert [record["label"] for record in records] == [
        direct[record["path"]][0] for record in records]
    assert "warning: skipping" in result.stderr and "bad.png" in result.stderr


def test_cli_without_an_export_says_so(tmp_path):
    result = run_python(["-m", "keras_transfer.predict", f"--model_dir={tmp_path}",
                         str(tmp_path)])
    assert result.returncode != 0
    assert f"no SavedModel export found under {str(tmp_path)!r}" in result.stderr


def test_cli_flags_are_documented_in_the_readme():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    for command, names in [("keras_transfer.predict", ["model_dir", "batch_size"]),
                           ("keras_transfer.export", ["run_dir", "image_size",
                                                      "export_tflite"])]:
        usage = [line for line in readme.splitlines() if f"python -m {command} " in line]
        assert usage, command
        for name in names:
            assert any(f"--{name}" in line for line in usage), (command, name)


def test_exports_without_top_k_outputs_are_still_answered(tmp_path):
    """An export written before top-k outputs existed: probabilities, label and
    score only. Top-k then comes from the probabilities and labels.txt."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    version = tmp_path / "export" / "1"
    (version / "assets").mkdir(parents=True)
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(image_bytes):
        pixels = tf.map_fn(lambda b: tf.cast(tf.io.decode_png(b, channels=1)[0, :4, 0],
                                             tf.float32), image_bytes,
                           fn_output_signature=tf.TensorSpec([4], tf.float32))
        probabilities = model(pixels)
        return {"probabilities": probabilities, "score": tf.reduce_max(probabilities, 1)}

    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.write_out(str(version), verbose=False)
    (version / "assets" / "labels.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    pixels = np.array([[10, 200, 30, 90]], np.uint8)
    record = predict.Predictor(str(tmp_path))([_png(pixels)])[0]
    expected = model(pixels[:1].astype("float32")).numpy()[0]
    assert record["label"] == CLASSES[int(expected.argmax())]
    assert [item["label"] for item in record["top_k"]] == [
        CLASSES[i] for i in np.argsort(-expected)]
    np.testing.assert_allclose([item["score"] for item in record["top_k"]],
                               np.sort(expected)[::-1], rtol=1e-5)


def test_a_nan_score_is_json_null():
    assert [predict._score(v) for v in (0.25, float("nan"), float("inf"))] == [0.25, None, None]
