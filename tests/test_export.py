"""The export is a SavedModel that TF Serving can load as it is.

What a serving client sees is checked from a fresh process that imports only
TensorFlow: no Keras code, no `keras_transfer`. Versions follow TF Serving's
layout and appear atomically.
"""

import base64
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_digits

import keras_transfer
from conftest import built_once, run_python
from keras_transfer.models import backbones
from keras_transfer.serving import export
from keras_transfer.models import classifier as model_lib

IMAGE_SIZE = 32
GRAY_CLASSES = ["ankle boot", "T-shirt/top", "sneaker"]
RGB_CLASSES = ["cat", "dog", "bird", "boat"]
TOLERANCE = 1e-5

# Runs in a fresh interpreter, the way TF Serving or any TensorFlow-only client
# would: it must not need Keras layers or `keras_transfer` to load and serve.
SERVE_CODE = r"""
import json
import sys

import tensorflow as tf

with open(sys.argv[1]) as handle:
    requests = json.load(handle)
results = {}
for name, request in requests.items():
    loaded = tf.saved_model.load(request["export"])
    if "pixels" in request:  # A JSON list of pixel rows, as a REST client sends.
        serve = loaded.signatures[request["signature"]]
        dtype = tf.uint8 if request["signature"].endswith("uint8") else tf.float32
        pixels = tf.reshape(tf.constant(request["pixels"], dtype), request["shape"])
        call = lambda: serve(pixels=pixels)
    else:
        serve = loaded.signatures["serving_default"]
        blobs = []
        for path in request["files"]:
            with open(path, "rb") as handle:
                blobs.append(handle.read())
        if request.get("scalar"):  # One string, not a list of one.
            blobs = blobs[0]
        call = lambda: serve(image_bytes=tf.constant(blobs, tf.string))
    try:
        outputs = call()
    except tf.errors.InvalidArgumentError as error:
        results[name] = {"error": type(error).__name__, "message": str(error)[-600:]}
        continue
    results[name] = {
        key: value.numpy().tolist() if value.dtype != tf.string else
        [[s.decode("utf-8") for s in row] if isinstance(row, list) else row.decode("utf-8")
         for row in value.numpy().tolist()]
        for key, value in outputs.items()
    }
    results[name]["dtypes"] = {key: value.dtype.name for key, value in outputs.items()}
# `import tensorflow` itself pulls in keras and PIL; the project must not be.
results["modules"] = sorted(name for name in sys.modules if name.startswith("keras_transfer"))
print(json.dumps(results))
"""


def _encode(pixels, image_format):
    """Encoded bytes of uint8 `pixels` ([H, W] gray or [H, W, 3] RGB)."""
    if image_format == "JPEG":
        image = pixels[..., None] if pixels.ndim == 2 else pixels
        return tf.io.encode_jpeg(image, quality=90).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def _declaring(png, width, height):
    """`png` with its IHDR claiming another size (what a decompression bomb
    does with real data: ours would fail the CRC check, if it got there)."""
    return png[:16] + width.to_bytes(4, "big") + height.to_bytes(4, "big") + png[24:]


def _bombs(pixels):
    """A few hundred bytes each, headers declaring about 268 megapixels and
    more: what a 10 KB lossless WebP of 16383 x 16383 did (34 s and 5.3 GB
    for one request) before every format's header was checked."""
    def patched(blob, at, data):
        return blob[:at] + data + blob[at + len(data):]

    lossless = _encode_webp(pixels, lossless=True)
    assert lossless[12:16] == b"VP8L"
    # 14 bits each of width - 1 and height - 1, from byte 21 on.
    side = 16383 - 1
    bits = (side | side << 14).to_bytes(4, "little")
    lossy = _encode_webp(pixels, lossless=False)
    assert lossy[12:16] == b"VP8 "
    extended = (b"RIFF\x30\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00"
                + (30000 - 1).to_bytes(3, "little") * 2 + bytes(16))
    jpeg = _encode(pixels, "JPEG")
    frame = jpeg.index(b"\xff\xc0")  # Baseline frame header: height, then width.
    return {
        "webp_lossless": patched(lossless, 21, bits),
        "webp_lossy": patched(lossy, 26, (16383).to_bytes(2, "little") * 2),
        "webp_extended": extended,
        "gif": patched(_encode(pixels, "GIF"), 6, (65535).to_bytes(2, "little") * 2),
        "bmp": patched(_encode(pixels, "BMP"), 18, (30000).to_bytes(4, "little") * 2),
        "jpeg": patched(jpeg, frame + 5, (30000).to_bytes(2, "big") * 2),
    }


def _encode_webp(pixels, lossless):
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(buffer, format="WEBP", lossless=lossless,
                                                 quality=80)
    return buffer.getvalue()


def _pixels_as_served(contents, channels):
    """The pixels that lossy JPEG or palette GIF bytes really carry."""
    if contents[:2] == b"\xff\xd8":
        # JPEG decoders legitimately differ by a level here and there, which
        # moves these probabilities by ~1e-3; TF's own libjpeg is the reference.
        return tf.io.decode_jpeg(contents, channels=channels).numpy()
    image = Image.open(io.BytesIO(contents)).convert("L" if channels == 1 else "RGB")
    pixels = np.asarray(image)
    return pixels[..., None] if channels == 1 else pixels


def _tree_digest(folder):
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode())
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def _spread_head(model, images):
    """Re-draws the classifier head so its top-1 class varies over `images`.

    A randomly initialised network gives nearly the same output for every
    image; centring the logits on these images and scaling them makes each
    label appear, so `label` is checked against more than one class.
    """
    pooled = keras.Model(model.inputs, model.get_layer("pool").output)
    features = pooled.predict_on_batch(images.astype(np.float32))
    head = model.get_layer("classifier")
    kernel, _ = head.get_weights()
    centred = (features - features.mean(axis=0)) @ kernel
    kernel = kernel * (4.0 / centred.std())
    head.set_weights([kernel, -features.mean(axis=0) @ kernel])


def _classifier_and_export(tmp_path_factory, name, seed, classes, channels, images):
    """A VGG16 classifier with a head spread over `images`, and its export.

    The export (and the weights it was made from) is written once per test
    session (`built_once`): the test processes take these tests in turns,
    and a module fixture rebuilt at each turn would export again."""
    keras.utils.set_random_seed(seed)
    model = model_lib.build_classifier(
        backbones.get("vgg16"), len(classes), image_size=IMAGE_SIZE, channels=channels
    )

    def build(folder):
        _spread_head(model, images if channels == 3 else images[..., None])
        model.save_weights(str(folder / "classifier.weights.h5"))
        export.export_model(model, str(folder / "export"), classes,
                            image_size=IMAGE_SIZE, channels=channels)

    folder = built_once(tmp_path_factory, name, build)
    model.load_weights(str(folder / "classifier.weights.h5"))
    return dict(model=model, base=str(folder / "export"), path=str(folder / "export" / "1"),
                images=images)


@pytest.fixture(scope="module")
def gray(tmp_path_factory):
    """A 1-channel VGG16 classifier, its export, and digits as 8x8 uint8."""
    digits = load_digits()
    picks = [int(np.flatnonzero(digits.target == d)[0]) for d in range(10)]
    images = (digits.images[picks] * 15).astype(np.uint8)  # 0-16 -> 0-240.
    return _classifier_and_export(tmp_path_factory, "gray_export", 0, GRAY_CLASSES, 1, images)


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    """A 3-channel classifier served images of a different size (20x24)."""
    images = np.random.default_rng(1).integers(0, 256, (6, 20, 24, 3), dtype=np.uint8)
    return _classifier_and_export(tmp_path_factory, "rgb_export", 1, RGB_CLASSES, 3, images)


def _requests(gray, rgb, folder):
    """Name -> (export, encoded images, expected pixels or None for an error)."""
    gray_pixels = gray["images"][..., None]
    cases = {
        "gray_png": (gray, [_encode(i, "PNG") for i in gray["images"]], gray_pixels),
        "gray_jpeg": (gray, [_encode(i, "JPEG") for i in gray["images"]], None),
        "gray_bmp": (gray, [_encode(i, "BMP") for i in gray["images"][:2]], gray_pixels[:2]),
        "gray_gif": (gray, [_encode(i, "GIF") for i in gray["images"][:2]], gray_pixels[:2]),
        "rgb_png": (rgb, [_encode(i, "PNG") for i in rgb["images"]], rgb["images"]),
        "rgb_jpeg": (rgb, [_encode(i, "JPEG") for i in rgb["images"]], None),
        "rgb_bmp": (rgb, [_encode(i, "BMP") for i in rgb["images"]], rgb["images"]),
        "rgb_gif": (rgb, [_encode(i, "GIF") for i in rgb["images"]], None),
        "rgb_mixed": (
            rgb,
            [_encode(i, f) for i, f in zip(rgb["images"], ["GIF", "BMP", "JPEG", "PNG"] * 2)],
            None,
        ),
        "empty_batch": (gray, [], "empty"),
        # A header declaring 20,000 x 20,000 pixels: refused before decoding.
        "huge_png": (gray, [_declaring(_encode(gray["images"][0], "PNG"), 20000, 20000)],
                     "error"),
        # The same bomb in every other format the signature decodes.
        **{f"huge_{kind}": (gray, [blob], "error")
           for kind, blob in _bombs(gray["images"][0]).items()},
        # A WebP whose first chunk is none the header reader knows: its size
        # cannot be checked, so it is not decoded.
        "unknown_webp": (gray, [b"RIFF\x24\x00\x00\x00WEBPXYZW" + bytes(24)], "error"),
        # One undecodable image among good ones.
        "bad_image": (
            gray,
            [_encode(gray["images"][0], "PNG"),
             np.random.default_rng(2).bytes(200),
             _encode(gray["images"][1], "PNG")],
            "error",
        ),
    }
    requests, expected = {}, {}
    for name, (setup, blobs, pixels) in cases.items():
        files = []
        for index, blob in enumerate(blobs):
            path = os.path.join(folder, f"{name}_{index}")
            with open(path, "wb") as handle:
                handle.write(blob)
            files.append(path)
        if pixels is None:  # Lossy: what the bytes decode to, by Pillow.
            channels = 1 if setup is gray else 3
            pixels = np.stack([_pixels_as_served(b, channels) for b in blobs])
        requests[name] = {"export": setup["path"], "files": files}
        expected[name] = (setup, pixels)
    # serving_pixels: the same images as 0-255 values, of their own sizes.
    for name, setup, pixels in [("gray_pixels", gray, gray_pixels),
                                ("rgb_pixels", rgb, rgb["images"])]:
        for signature in ("serving_pixels", "serving_pixels_uint8"):
            case = name + signature[len("serving_pixels"):]
            requests[case] = {"export": setup["path"], "pixels": pixels.tolist(),
                              "shape": pixels.shape, "signature": signature}
            expected[case] = (setup, pixels)
    requests["scalar_bytes"] = {**requests["gray_png"], "scalar": True}
    # What a client may get wrong: the other colour model, NaN, an empty batch.
    nan_pixels = gray_pixels[:2].astype(np.float32)
    nan_pixels[1, 3, 3, 0] = np.nan
    for case, setup, pixels in [("gray_pixels_rgb", gray, rgb["images"]),
                                ("rgb_pixels_gray", rgb, gray_pixels),
                                ("gray_pixels_nan", gray, nan_pixels),
                                ("gray_pixels_empty", gray, np.zeros([0, 8, 8, 1]))]:
        requests[case] = {"export": setup["path"], "pixels": pixels.tolist(),
                          "shape": pixels.shape, "signature": "serving_pixels"}
    return requests, expected


@pytest.fixture(scope="module")
def served(gray, rgb, tmp_path_factory):
    """Outputs of `serving_default` in a TensorFlow-only process (asked once
    per test session), and what the in-memory Keras models give for the same
    pixels."""
    def build(folder):
        requests, _ = _requests(gray, rgb, str(folder))
        requests_file = os.path.join(folder, "requests.json")
        with open(requests_file, "w") as handle:
            json.dump(requests, handle)
        result = run_python(["-c", SERVE_CODE, requests_file])
        assert result.returncode == 0, result.stderr[-3000:]
        (folder / "outputs.json").write_text(result.stdout.strip().splitlines()[-1])

    folder = built_once(tmp_path_factory, "export_served", build)
    outputs = json.loads((folder / "outputs.json").read_text())
    _, expected = _requests(gray, rgb, str(tmp_path_factory.mktemp("requests")))
    references = {
        name: None if isinstance(pixels, str) else
        setup["model"].predict_on_batch(pixels.astype(np.float32))
        for name, (setup, pixels) in expected.items()
    }
    return outputs, references


def test_served_in_tensorflow_only_process(served):
    outputs, _ = served
    assert outputs["modules"] == []


@pytest.mark.parametrize("case", ["gray_png", "rgb_png", "rgb_bmp", "gray_pixels",
                                  "rgb_pixels", "gray_pixels_uint8", "rgb_pixels_uint8"])
def test_probabilities_match_keras_model(served, case):
    outputs, references = served
    probabilities = np.asarray(outputs[case]["probabilities"])
    assert outputs[case]["dtypes"]["probabilities"] == "float32"
    assert probabilities.shape == references[case].shape
    np.testing.assert_allclose(probabilities, references[case], rtol=0, atol=TOLERANCE)
    # The comparison can tell images apart: a serving path that mangled the
    # pixels would not pass it by accident.
    spread = np.abs(references[case] - references[case][:1]).max()
    assert spread > 100 * TOLERANCE


@pytest.mark.parametrize(
    "case",
    ["gray_jpeg", "gray_bmp", "gray_gif", "rgb_jpeg", "rgb_gif", "rgb_mixed"],
)
def test_jpeg_bmp_gif_accepted(served, case):
    outputs, references = served
    assert "error" not in outputs[case], outputs[case].get("message")
    # JPEG and GIF are lossy: the reference is the model on the pixels the
    # same bytes decode to.
    np.testing.assert_allclose(
        outputs[case]["probabilities"], references[case], rtol=0, atol=TOLERANCE
    )


@pytest.mark.parametrize("case, classes", [
    ("gray_png", GRAY_CLASSES), ("rgb_png", RGB_CLASSES),
    ("gray_pixels", GRAY_CLASSES), ("rgb_pixels", RGB_CLASSES),
    ("rgb_pixels_uint8", RGB_CLASSES)])
def test_label_and_score_follow_probabilities(served, case, classes):
    outputs, _ = served
    probabilities = np.asarray(outputs[case]["probabilities"])
    assert outputs[case]["label"] == [classes[i] for i in probabilities.argmax(axis=1)]
    assert len(set(outputs[case]["label"])) >= 3  # More than one row of the table.
    assert outputs[case]["dtypes"]["score"] == "float32"
    np.testing.assert_array_equal(outputs[case]["score"], probabilities.max(axis=1))
    # Top k = min(5, classes) = all of these few classes, best first.
    order = np.argsort(-probabilities, axis=1, kind="stable")
    assert outputs[case]["top_k_labels"] == [[classes[i] for i in row] for row in order]
    np.testing.assert_array_equal(outputs[case]["top_k_scores"],
                                  np.take_along_axis(probabilities, order, axis=1))
    assert outputs[case]["dtypes"]["top_k_labels"] == "string"
    assert outputs[case]["dtypes"]["top_k_scores"] == "float32"


@pytest.mark.parametrize("setup, classes", [("gray", GRAY_CLASSES), ("rgb", RGB_CLASSES)])
def test_labels_txt_is_an_asset(request, setup, classes):
    path = request.getfixturevalue(setup)["path"]
    with open(os.path.join(path, "assets", export.LABELS_FILE), encoding="utf-8") as handle:
        assert handle.read() == "".join(f"{name}\n" for name in classes)


@pytest.mark.parametrize("case, says", [
    ("gray_pixels_rgb", "[?,?,?,1]"),  # Would be answered from the red channel.
    ("rgb_pixels_gray", "[?,?,?,3]"),
    ("gray_pixels_nan", "pixels must be finite"),
    ("scalar_bytes", "[?]"),  # Not [batch] strings.
    *[(f"huge_{kind}", "image larger than 50 megapixels, the limit of this export")
      for kind in ("png", "webp_lossless", "webp_lossy", "webp_extended", "gif", "bmp",
                   "jpeg")],
    ("unknown_webp", "a WebP whose header does not declare its size"),
])
def test_pixels_of_the_wrong_kind_are_refused(served, case, says):
    outputs, _ = served
    assert outputs[case]["error"] == "InvalidArgumentError"
    assert says in outputs[case]["message"], outputs[case]["message"]


@pytest.mark.parametrize("case", ["empty_batch", "gray_pixels_empty"])
def test_an_empty_batch_gets_empty_answers(served, case):
    outputs, _ = served
    assert "error" not in outputs[case], outputs[case].get("message")
    assert outputs[case]["probabilities"] == [] and outputs[case]["label"] == []
    assert outputs[case]["top_k_labels"] == []


def test_bad_image_raises_invalid_argument(served):
    outputs, _ = served
    assert outputs["bad_image"]["error"] == "InvalidArgumentError"
    # The process carried on and served the remaining requests.
    assert "rgb_png" in outputs and "modules" in outputs


def _signature_block(shown, name):
    block = shown[shown.index(f"signature_def['{name}']"):]
    block = block[:block.index("Method name is")]
    return block.split("The given SavedModel SignatureDef contains the following output(s):")


def _tensor_info(block, name):
    info = block[block.index(f"['{name}'] tensor_info:"):]
    return info[:info.index("name:")]


def test_saved_model_cli_shows_the_signatures(gray):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = run_python([cli, "show", "--dir", gray["path"], "--all"])
    assert result.returncode == 0, result.stderr[-3000:]
    classes, k = len(GRAY_CLASSES), min(5, len(GRAY_CLASSES))
    expected_inputs = {"serving_default": ("image_bytes", "DT_STRING", "(-1)"),
                       "serving_pixels": ("pixels", "DT_FLOAT", "(-1, -1, -1, 1)"),
                       "serving_pixels_uint8": ("pixels", "DT_UINT8", "(-1, -1, -1, 1)")}
    for signature, (name, dtype, shape) in expected_inputs.items():
        inputs, outputs = _signature_block(result.stdout, signature)
        info = _tensor_info(inputs, name)
        assert f"dtype: {dtype}" in info and f"shape: {shape}" in info, info
        for output, dtype, shape in [
            ("probabilities", "DT_FLOAT", f"(-1, {classes})"),
            ("label", "DT_STRING", "(-1)"),
            ("score", "DT_FLOAT", "(-1)"),
            ("top_k_labels", "DT_STRING", f"(-1, {k})"),
            ("top_k_scores", "DT_FLOAT", f"(-1, {k})"),
        ]:
            info = _tensor_info(outputs, output)
            assert f"dtype: {dtype}" in info and f"shape: {shape}" in info, info
    # What the model card tells a deployer is what saved_model_cli shows.
    with open(os.path.join(gray["path"], "assets", "model_card.json")) as handle:
        card = json.load(handle)
    assert card["signatures"]["serving_pixels"]["inputs"] == {
        "pixels": ["float32", [None, None, None, 1]]}
    assert card["signatures"]["serving_default"]["outputs"]["top_k_labels"] == [
        "string", [None, k]]


def test_rest_request_body_is_served(gray):
    """The README's REST body, built and read the way TF Serving reads it:
    each instance is the value of the one input, `{"b64": ...}` its bytes."""
    blobs = [_encode(image, "PNG") for image in gray["images"][:4]]
    body = json.dumps({"instances": [{"b64": base64.b64encode(blob).decode("ascii")}
                                     for blob in blobs]})

    received = json.loads(body)
    image_bytes = [base64.b64decode(instance["b64"]) for instance in received["instances"]]
    serve = tf.saved_model.load(gray["path"]).signatures["serving_default"]
    outputs = serve(image_bytes=tf.constant(image_bytes))

    reference = gray["model"].predict_on_batch(gray["images"][:4, ..., None].astype(np.float32))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), reference,
                               rtol=0, atol=TOLERANCE)
    assert [label.decode() for label in outputs["label"].numpy()] == [
        GRAY_CLASSES[i] for i in reference.argmax(axis=1)]


def _small_classifier(num_classes, channels=1):
    """A tiny model with the classifier's interface (any-size pixels in)."""
    inputs = keras.Input((None, None, channels), name="pixels")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def test_top_k_is_capped_at_five(tmp_path):
    keras.utils.set_random_seed(3)
    classes = [f"class {i}" for i in range(7)]
    model = _small_classifier(len(classes))
    path = export.export_model(model, str(tmp_path), classes, image_size=16, channels=1)
    pixels = np.random.default_rng(3).uniform(0, 255, (3, 16, 16, 1)).astype(np.float32)
    outputs = tf.saved_model.load(path).signatures["serving_pixels"](pixels=pixels)
    assert outputs["top_k_labels"].shape == (3, 5)
    probabilities = model.predict_on_batch(pixels)
    best = np.argsort(-probabilities, axis=1)[:, :5]
    assert outputs["top_k_labels"].numpy().astype(str).tolist() == [
        [classes[i] for i in row] for row in best]


def test_model_card_is_a_tracked_asset(gray, tmp_path):
    keras.utils.set_random_seed(4)
    card = {"backbone": "tiny", "test_metrics": {"accuracy": 0.5},
            "training_config": {"epochs": 1}, "class_names": ["overridden"]}
    path = export.export_model(_small_classifier(3), str(tmp_path / "export"), GRAY_CLASSES,
                               image_size=24, channels=1, card=card)
    with open(os.path.join(path, "assets", "model_card.json"), encoding="utf-8") as handle:
        written = json.load(handle)
    assert written["class_names"] == GRAY_CLASSES  # The export's own facts win.
    assert written["image_size"] == 24 and written["channels"] == 1
    assert written["backbone"] == "tiny" and written["test_metrics"] == {"accuracy": 0.5}
    assert written["training_config"] == {"epochs": 1}
    assert written["versions"]["tensorflow"] == tf.__version__
    assert written["versions"]["keras_transfer"] == keras_transfer.__version__
    # Tracked by the SavedModel, not merely copied beside it: re-saving the
    # loaded model carries the card along.
    resaved = str(tmp_path / "resaved")
    tf.saved_model.save(tf.saved_model.load(path), resaved)
    assert sorted(os.listdir(os.path.join(resaved, "assets"))) == [
        "labels.txt", "model_card.json"]
    with open(os.path.join(resaved, "assets", "model_card.json"), encoding="utf-8") as handle:
        assert json.load(handle) == written


def test_tflite_export_matches_keras_model(gray, tmp_path):
    path = export.export_model(gray["model"], str(tmp_path), GRAY_CLASSES,
                               image_size=IMAGE_SIZE, channels=1, tflite=True)
    folder = os.path.join(path, export.TFLITE_DIR)
    assert sorted(os.listdir(folder)) == ["labels.txt", "model.tflite"]
    with open(os.path.join(folder, "labels.txt"), encoding="utf-8") as handle:
        assert handle.read().splitlines() == GRAY_CLASSES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice.
        interpreter = tf.lite.Interpreter(model_path=os.path.join(folder, "model.tflite"))
    run = interpreter.get_signature_runner("serving_pixels")
    pixels = gray["images"][:4, ..., None].astype(np.float32)
    outputs = run(pixels=pixels)
    reference = gray["model"].predict_on_batch(pixels)
    np.testing.assert_allclose(outputs["probabilities"], reference, rtol=0, atol=TOLERANCE)
    assert [label.decode() for label in outputs["label"]] == [
        GRAY_CLASSES[i] for i in reference.argmax(axis=1)]
    assert outputs["top_k_labels"].shape == (4, 3)


def test_second_export_takes_next_version(gray, tmp_path):
    base = tmp_path / "run" / "export"
    shutil.copytree(gray["path"], base / "1")
    # Things an export base collects that are not versions.
    for name in ["notes", "3a", "v7", "\u00b2"]:
        (base / name).mkdir()
    (base / "9").write_text("not a SavedModel")
    before = _tree_digest(base / "1")
    assert export.existing_versions(str(base)) == [1]

    path = export.export_model(
        gray["model"], str(base), GRAY_CLASSES, image_size=IMAGE_SIZE, channels=1
    )

    assert path == str(base / "2")
    assert export.existing_versions(str(base)) == [1, 2]
    assert _tree_digest(base / "1") == before
    assert sorted(os.listdir(base)) == sorted(["1", "2", "9", "notes", "3a", "v7", "\u00b2"])
    assert sorted(os.listdir(path)) == sorted(
        ["assets", "fingerprint.pb", "model.keras", "saved_model.pb", "variables"]
    )
    assert export.latest_export(str(tmp_path / "run")) == str(base / "2")
    assert export.latest_export(str(base)) == str(base / "2")
    assert export.latest_export(str(base / "1")) == str(base / "1")


def test_an_export_clears_what_killed_exports_left_and_keeps_running_ones(gray, tmp_path):
    base = tmp_path / "export"
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    gone, host = int(finished.stdout), socket.gethostname()
    left = [f".staging-{gone}@{host}-ab12", ".staging-before_writers_were_named"]
    kept = [f".staging-{os.getpid()}@{host}-cd34",  # This process: still writing.
            f".staging-{gone}@another-machine-ef56"]  # Not ours to judge.
    for name in left + kept:
        (base / name / "saved_model").mkdir(parents=True)

    path = export.export_model(
        gray["model"], str(base), GRAY_CLASSES, image_size=IMAGE_SIZE, channels=1
    )

    assert path == str(base / "1")
    assert sorted(os.listdir(base)) == sorted(["1", *kept])


def test_latest_export_without_exports_raises(tmp_path):
    (tmp_path / "export").mkdir()
    with pytest.raises(FileNotFoundError, match="no SavedModel export"):
        export.latest_export(str(tmp_path))


class _FailsWhenExported(keras.layers.Layer):
    """Passes pixels through until `fail` is set; then tracing raises."""

    fail = False

    def call(self, images):
        if self.fail:
            raise RuntimeError("tracing failed on purpose")
        return images


def test_failed_export_leaves_no_version_and_no_staging(tmp_path):
    inputs = keras.Input((None, None, 1))
    x = _FailsWhenExported()(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.layers[1].fail = True
    base = tmp_path / "export"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_bytes(b"version one")

    with pytest.raises(RuntimeError, match="tracing failed on purpose"):
        export.export_model(model, str(base), ["a", "b"], image_size=IMAGE_SIZE, channels=1)

    assert os.listdir(base) == ["1"]
    assert (base / "1" / "saved_model.pb").read_bytes() == b"version one"


def test_unusable_export_base_creates_nothing(gray, tmp_path):
    blocker = tmp_path / "export"
    blocker.write_text("a file where the export base should be")
    with pytest.raises(OSError):
        export.export_model(
            gray["model"], str(blocker), GRAY_CLASSES, image_size=IMAGE_SIZE, channels=1
        )
    assert os.listdir(tmp_path) == ["export"]
    assert blocker.read_text() == "a file where the export base should be"


@pytest.mark.parametrize(
    "class_names, channels, message",
    [
        (GRAY_CLASSES, 3, "channels must match the model's input channels (1). "
                          "Received: channels=3"),
        (GRAY_CLASSES[:2], 1, "class_names must name each of the model's 3 outputs"),
        (["ankle\nboot", "shirt", "sneaker"], 1, "class names must be one line"),
    ],
)
def test_mismatched_arguments_rejected_before_writing(gray, tmp_path, class_names,
                                                      channels, message):
    base = tmp_path / "export"
    with pytest.raises(ValueError) as raised:
        export.export_model(gray["model"], str(base), class_names,
                            image_size=IMAGE_SIZE, channels=channels)
    assert message in str(raised.value)
    assert not base.exists()
