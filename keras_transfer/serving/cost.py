"""What an export costs to serve: its size on disk, batch-1 latency and
batch-64 throughput of its `serving_pixels` signature (a model's operations
per image: `models/flops.py`). Distillation's report sets a student's beside
its teacher's, measured in one process, calls interleaved so that load from
other processes falls on both alike.
"""

import os
import time

import numpy as np
import tensorflow as tf

from keras_transfer.serving import export

THROUGHPUT_BATCH = 64


def size_on_disk(version_folder):
    """Bytes of the SavedModel (graph, variables, assets), the TF Serving part
    of the folder: `model.keras` and a TFLite copy beside it are left out."""
    total = 0
    for root, folders, files in os.walk(version_folder):
        if os.path.abspath(root) == os.path.abspath(version_folder):
            folders[:] = [name for name in folders if name != export.TFLITE_DIR]
            files = [name for name in files if name != export.KERAS_FILE]
        total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
    return total


def _pixels_call(version_folder, image_size, channels, batch):
    serve = tf.saved_model.load(version_folder).signatures["serving_pixels"]
    pixels = tf.constant(np.random.default_rng(0).uniform(
        0, 255, (batch, image_size, image_size, channels)).astype(np.float32))
    return lambda: serve(pixels=pixels)["probabilities"].numpy()


def serving_speed(version_folders, image_size, channels, rounds=30, warmup=3):
    """{folder: {"latency_ms_batch1": median, "images_per_second_batch64": median}}
    for each export, their calls interleaved round by round."""
    calls = {folder: (_pixels_call(folder, image_size, channels, 1),
                      _pixels_call(folder, image_size, channels, THROUGHPUT_BATCH))
             for folder in version_folders}
    timings = {folder: ([], []) for folder in version_folders}
    for round_index in range(warmup + rounds):
        for folder, pair in calls.items():
            for call, seconds in zip(pair, timings[folder]):
                start = time.perf_counter()
                call()
                if round_index >= warmup:
                    seconds.append(time.perf_counter() - start)
    return {folder: {"latency_ms_batch1": round(1000 * float(np.median(one)), 3),
                     "images_per_second_batch64": round(
                         THROUGHPUT_BATCH / float(np.median(many)), 1)}
            for folder, (one, many) in timings.items()}
