"""Measures one pass over a generated folder: time and peak memory.

`python benchmarks/folder_probe.py N DIR` writes N small PNGs into DIR
(two classes), loads it as a dataset (discovery and the decode check), runs
one epoch of the training pipeline, and prints a JSON line. Each measurement
runs in its own process, so peak memory (ru_maxrss) is that size's alone; the
scale test and `benchmarks/input_pipeline.py` both use it.
"""

import io
import json
import os
import resource
import sys
import time

import keras_transfer  # noqa: F401  (turns oneDNN on before TensorFlow loads)


def write_folder(root, count, size=16):
    from PIL import Image

    images = []
    for colour in ((200, 30, 30), (30, 30, 200)):
        buffer = io.BytesIO()
        Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    for index in range(count):
        label = index % 2
        folder = os.path.join(root, f"class{label}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{index:06d}.png"), "wb") as handle:
            handle.write(images[label])


def measure(count, root, image_size=64, batch_size=64):
    from keras_transfer.data import tasks
    from keras_transfer.data import folders
    from keras_transfer.data import pipeline

    write_folder(root, count)
    start = time.perf_counter()
    data = tasks.load_task(root, None, role="target", seed=0, validation_fraction=0.1,
                              test_fraction=0.1, folder_policy=folders.FolderPolicy(
                                  cache_dir=os.path.join(root, ".cache")))
    loaded = time.perf_counter()
    dataset = pipeline.make_dataset(data.train, num_classes=2, batch_size=batch_size,
                                    image_size=image_size, channels=3, training=True)
    seen = sum(int(images.shape[0]) for images, _ in dataset)
    done = time.perf_counter()
    return {"images": count, "trained_on": seen, "check_seconds": round(loaded - start, 2),
            "epoch_seconds": round(done - loaded, 2),
            "images_per_second": round(seen / (done - loaded), 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(json.dumps(measure(int(sys.argv[1]), sys.argv[2])))
