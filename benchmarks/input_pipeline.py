"""Does the input pipeline keep up, and does memory stay flat as folders grow?

    python benchmarks/input_pipeline.py [--quick]

Prints two tables, measured in this one run:
1. Folder scale: for generated folders of 1k, 4k and 16k small PNGs, the time of
   the pre-training check, one training epoch through the pipeline, and the
   process's peak memory (each size in its own process).
2. Pipeline vs model: images per second the `tf.data` pipeline delivers from a
   folder of JPEG photos (decode, resize to 224, shuffle, batch), against the
   images per second a fine-tuning step consumes (whole base trainable) for
   VGG16 and ResNet50 at 224 px. The ratio must stay above 3.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import keras_transfer  # noqa: F401  (turns oneDNN on before TensorFlow loads)
from table import markdown

HERE = os.path.dirname(os.path.abspath(__file__))


def folder_scale(sizes, workdir):
    rows = []
    for count in sizes:
        result = subprocess.run(
            [sys.executable, os.path.join(HERE, "folder_probe.py"), str(count),
             os.path.join(workdir, f"scale{count}")],
            capture_output=True, text=True, check=True)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return rows


def write_photos(root, count, seed=0):
    """JPEG 'photos' of 320x240: smooth gradients plus noise, two classes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:240, 0:320]
    for index in range(count):
        folder = os.path.join(root, f"class{index % 2}")
        os.makedirs(folder, exist_ok=True)
        base = np.stack([x * 0.8, y, (x + y) * 0.4], axis=-1) + rng.normal(0, 20, (240, 320, 3))
        image = np.clip(base + rng.integers(0, 60, 3), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(os.path.join(folder, f"{index:05d}.jpg"), quality=90)


def pipeline_rate(root, batch_size, epochs=2):
    from keras_transfer.data import tasks
    from keras_transfer.data import folders
    from keras_transfer.data import pipeline

    data = tasks.load_task(root, None, role="target", seed=0, validation_fraction=0.1,
                              test_fraction=0.1,
                              folder_policy=folders.FolderPolicy(cache_dir=None))
    dataset = pipeline.make_dataset(data.train, num_classes=2, batch_size=batch_size,
                                    image_size=224, channels=3, training=True)
    for _ in dataset.take(1):  # Warm-up: graph tracing, thread pools.
        pass
    start, seen = time.perf_counter(), 0
    for _ in range(epochs):
        seen += sum(int(images.shape[0]) for images, _ in dataset)
    return seen / (time.perf_counter() - start)


def model_rate(name, batch_size, steps):
    """Images per second of a fine-tuning train step (whole base trainable)."""
    import keras
    import numpy as np

    from keras_transfer.models import backbones
    from keras_transfer.models import classifier as model_lib

    spec = backbones.get(name)
    classifier = model_lib.build_classifier(spec, 2, image_size=224, channels=3)
    model_lib.set_trainable_for_phase(classifier, spec, "fine_tune", "all")
    classifier.compile(optimizer=keras.optimizers.Adam(1e-5),
                       loss="categorical_crossentropy")
    images = np.random.default_rng(0).uniform(0, 255, (batch_size, 224, 224, 3))
    labels = keras.utils.to_categorical(np.arange(batch_size) % 2, 2)
    classifier.train_on_batch(images, labels)  # Warm-up: tracing.
    start = time.perf_counter()
    for _ in range(steps):
        classifier.train_on_batch(images, labels)
    return steps * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller folders, fewer steps")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sizes = (1000, 4000) if args.quick else (1000, 4000, 16000)
    photos, steps, batch = (64, 2, 8) if args.quick else (256, 4, 16)
    with tempfile.TemporaryDirectory() as workdir:
        scale = folder_scale(sizes, workdir)
        write_photos(os.path.join(workdir, "photos"), photos)
        delivered = pipeline_rate(os.path.join(workdir, "photos"), batch)
    print("\nFolder scale: 16x16 PNGs, the pre-training check, then one epoch of the "
          "train split through the pipeline at 64 px, each size in its own process\n")
    print(markdown(["images", "check s", "epoch s", "images/s", "peak RSS MB"],
                   [[f"{row['images']:,}", row["check_seconds"], row["epoch_seconds"],
                     f"{row['images_per_second']:,}", row["peak_rss_mb"]]
                    for row in scale]))
    print(f"\nPipeline vs fine-tuning step: 224 px, 320x240 JPEG input, batch {batch}\n")
    rows = []
    for name in ("vgg16", "resnet50"):
        consumed = model_rate(name, batch, steps)
        rows.append([name, f"{consumed:.1f}", f"{delivered:.1f}",
                     f"{delivered / consumed:.1f}x"])
    print(markdown(["model", "model images/s", "pipeline images/s", "pipeline / model"],
                   rows))


if __name__ == "__main__":
    main()
