"""Batch-1 latency: the exported signatures against `model.predict` and a plain
`model(x)` call on the same model, measured side by side in one process.

    python benchmarks/serving_latency.py --model=vgg16 --image_size=32 --calls=300

Calls are interleaved (one of each per round) so that load from other
processes on a shared machine falls on all of them alike. Prints a Markdown
table of median and 90th-percentile milliseconds after warm-up.
"""

import argparse
import io
import os
import platform
import tempfile
import time

import keras_transfer  # noqa: F401  (turns oneDNN on before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from keras_transfer.models import backbones  # noqa: E402
from keras_transfer.serving import export
from keras_transfer.models import classifier as model_lib  # noqa: E402
from table import markdown  # noqa: E402


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vgg16", choices=sorted(backbones.REGISTRY))
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300, help="timed calls of each")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls of each")
    parser.add_argument("--quick", action="store_true", help="50 calls after 5 warm-up")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.warmup = 50, 5
    return args


def _candidates(model, export_path, pixels, png):
    """Name -> a zero-argument call that runs one batch-1 prediction."""
    loaded = tf.saved_model.load(export_path)
    by_bytes = loaded.signatures["serving_default"]
    by_pixels = loaded.signatures["serving_pixels"]
    image_bytes, pixel_tensor = tf.constant([png]), tf.constant(pixels)
    return {
        "SavedModel `serving_default` (PNG bytes: decode + resize + model)":
            lambda: by_bytes(image_bytes=image_bytes)["probabilities"].numpy(),
        "SavedModel `serving_pixels` (float32 pixels)":
            lambda: by_pixels(pixels=pixel_tensor)["probabilities"].numpy(),
        "`model.predict(x)`": lambda: model.predict(pixels, verbose=0),
        "`model(x)` (eager call)": lambda: model(pixels, training=False).numpy(),
    }


def _measure(candidates, calls, warmup):
    times = {name: [] for name in candidates}
    for round_index in range(warmup + calls):
        for name, call in candidates.items():
            start = time.perf_counter()
            call()
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: np.asarray(values) * 1000 for name, values in times.items()}


def _table(milliseconds, reference="`model.predict(x)`"):
    base = np.median(milliseconds[reference])
    return markdown(
        ["path", "median ms", "p90 ms", "median vs `model.predict`"],
        [[name, f"{np.median(values):.2f}", f"{np.percentile(values, 90):.2f}",
          f"{np.median(values) / base:.2f}x"] for name, values in milliseconds.items()])


def main():
    args = _arguments()
    keras.utils.set_random_seed(0)
    model = model_lib.build_classifier(backbones.get(args.model), args.classes,
                                       image_size=args.image_size, channels=args.channels)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (args.image_size, args.image_size, args.channels),
                         dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if args.channels == 1 else image).save(buffer, "PNG")
    pixels = image[None].astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = export.export_model(model, folder, [str(i) for i in range(args.classes)],
                                   image_size=args.image_size, channels=args.channels)
        candidates = _candidates(model, path, pixels, buffer.getvalue())
        # All four answer alike: the comparison is between equal computations.
        answers = [call() for call in candidates.values()]
        for answer in answers[1:]:
            np.testing.assert_allclose(answer, answers[0], atol=1e-5)
        load_before = os.getloadavg()[0]
        milliseconds = _measure(candidates, args.calls, args.warmup)
        load_after = os.getloadavg()[0]
    print(f"{args.model}, {args.image_size}x{args.image_size}x{args.channels}, "
          f"{args.classes} classes, batch 1, {args.calls} calls after {args.warmup} "
          f"warm-up; TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"1-minute load average {load_before:.1f} before, {load_after:.1f} after\n")
    print(_table(milliseconds))


if __name__ == "__main__":
    main()
