"""How close each backbone's forward pass comes to the machine's matmul peak.

    python benchmarks/forward_efficiency.py [--quick] [--image_size=224]

Measured in this one run: the float32 matmul peak (large square matmuls),
then images per second of each backbone's forward pass (the frozen base as
phase 1 runs it), converted to achieved FLOP/s from the published multiply-add
counts at 224 px (scaled with the pixel count) and divided by the peak.
"""

import argparse
import os
import time

import keras_transfer  # noqa: F401  (turns oneDNN on before TensorFlow loads)
from table import markdown

# Multiply-adds per image at 224 x 224 (the Keras Applications papers' counts).
MACS_AT_224 = {"vgg16": 15.5e9, "resnet50": 4.1e9, "mobilenet_v2": 0.30e9,
               "efficientnet_b0": 0.39e9}


def matmul_peak(size=2048, repeats=10):
    """Best float32 FLOP/s of a size x size matmul on this machine."""
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    step = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    step(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def forward_rate(name, image_size, batch_size, batches):
    """Images per second of the frozen base's forward pass (best of runs)."""
    import numpy as np
    import tensorflow as tf

    from keras_transfer.models import backbones

    spec = backbones.get(name)
    base = spec.build(image_size)
    images = tf.constant(np.random.default_rng(0).uniform(
        -1, 1, (batch_size, image_size, image_size, 3)).astype("float32"))
    forward = tf.function(lambda x: base(x, training=False))
    forward(images).numpy()  # Trace and warm up.
    best = float("inf")
    for _ in range(batches):
        start = time.perf_counter()
        forward(images).numpy()
        best = min(best, time.perf_counter() - start)
    return batch_size / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="VGG16 and ResNet50 only")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    names = ("vgg16", "resnet50") if args.quick else tuple(MACS_AT_224)
    peak = matmul_peak()
    scale = (args.image_size / 224) ** 2
    rows = []
    for name in names:
        rate = forward_rate(name, args.image_size, args.batch_size, 2 if args.quick else 4)
        flops = 2 * MACS_AT_224[name] * scale
        rows.append([name, f"{rate:.1f}", f"{flops / 1e9:.2f}",
                     f"{rate * flops / 1e9:.1f}", f"{rate * flops / peak:.0%}"])
    print(f"\nForward pass of the frozen base at {args.image_size} px, batch "
          f"{args.batch_size}; float32 matmul peak (2048^2) measured in the same run: "
          f"{peak / 1e9:.1f} GFLOP/s\n")
    print(markdown(["model", "images/s", "GFLOP/image", "GFLOP/s", "of peak"], rows))


if __name__ == "__main__":
    main()
