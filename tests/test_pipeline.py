"""The tf.data pipeline and image decoding, on tiny in-memory and file data."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_transfer.data import sources
from keras_transfer.data import pipeline

NUM_CLASSES = 3
COLOR = (200, 100, 50)
# What tf.image.rgb_to_grayscale makes of COLOR.
GREY = 0.2989 * COLOR[0] + 0.5870 * COLOR[1] + 0.1140 * COLOR[2]


def in_memory_examples(count=24, size=16, channels=1):
    """Random pixels whose first pixel is the example's index, for tracking order."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, size, size, channels), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(count)
    return sources.Examples(labels=np.arange(count) % NUM_CLASSES, images=images)


def make(examples, **kwargs):
    settings = dict(num_classes=NUM_CLASSES, batch_size=5, image_size=16,
                    channels=examples.images.shape[-1] if examples.images is not None
                    else 3)
    return pipeline.make_dataset(examples, **{**settings, **kwargs})


def order(dataset):
    """The example indices in the order one epoch yields them."""
    return [int(i) for images, _ in dataset for i in images[:, 0, 0, 0].numpy()]


def pixels(dataset):
    return np.concatenate([images.numpy() for images, _ in dataset])


def test_in_memory_batches_are_float_pixels_with_one_hot_labels():
    examples = in_memory_examples()
    images, labels = next(iter(make(examples)))
    assert images.dtype == tf.float32 and images.shape == (5, 16, 16, 1)
    assert labels.dtype == tf.float32 and labels.shape == (5, NUM_CLASSES)
    np.testing.assert_array_equal(images.numpy(), examples.images[:5])
    np.testing.assert_array_equal(
        labels.numpy(), np.eye(NUM_CLASSES, dtype=np.float32)[examples.labels[:5]]
    )


def test_training_order_is_fixed_by_the_seed():
    examples = in_memory_examples()
    first = order(make(examples, training=True, seed=7))
    assert first == order(make(examples, training=True, seed=7))
    assert first != order(make(examples, training=True, seed=8))
    assert sorted(first) == list(range(len(examples)))


@pytest.mark.parametrize("examples, batch, min_steps, passes", [
    (7, 5, 4, 3), (25, 32, 20, 25), (630, 32, 20, 1), (640, 32, 20, 1), (639, 32, 21, 2),
    (10, 5, 1, 1), (1, 32, 1, 1)])
def test_passes_per_epoch_are_the_fewest_that_reach_min_steps(examples, batch, min_steps,
                                                                passes):
    assert pipeline.passes_per_epoch(examples, batch, min_steps) == passes
    assert -(-passes * examples // batch) >= min_steps
    assert passes == 1 or -(-(passes - 1) * examples // batch) < min_steps


def test_a_small_training_split_repeats_within_an_epoch_up_to_min_steps():
    examples = in_memory_examples(count=7)
    # Batch 5, at least 4 steps: 3 passes (21 examples), 5 batches.
    dataset = make(examples, training=True, seed=1, min_steps=4)
    assert int(dataset.cardinality()) == 5
    epoch = order(dataset)
    passes = [epoch[i * 7:(i + 1) * 7] for i in range(3)]
    assert len(epoch) == 21 and all(sorted(p) == list(range(7)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # Reshuffled every pass.
    assert order(dataset) != epoch  # And every epoch.
    # A split with enough batches (24 at batch 5: 5 batches, the last partial),
    # and evaluation, stay at one pass.
    assert len(order(make(in_memory_examples(count=24), training=True, min_steps=5))) == 24
    assert order(make(examples, min_steps=4)) == list(range(7))


def test_training_order_changes_across_epochs():
    dataset = make(in_memory_examples(), training=True, seed=7)
    assert order(dataset) != order(dataset)


def test_evaluation_order_is_the_split_order():
    examples = in_memory_examples()
    assert order(make(examples, training=False, seed=7)) == list(range(len(examples)))


def test_augmentation_changes_training_pixels_only():
    examples = in_memory_examples(channels=3)
    augment = ("rotation", "zoom")
    plain = pixels(make(examples, training=True, seed=3))
    augmented = pixels(make(examples, training=True, seed=3, augment=augment))
    assert augmented.shape == plain.shape and augmented.dtype == np.float32
    assert not np.allclose(augmented, plain)
    evaluation = pixels(make(examples, training=False, augment=augment))
    np.testing.assert_array_equal(evaluation, examples.images)


def encode(fmt, mode="RGB", size=(10, 7), color=COLOR):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


def animated_gif():
    frames = [Image.new("RGB", (10, 7), color) for color in (COLOR, (10, 20, 30))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def test_file_examples_decode_to_rgb_at_image_size(tmp_path):
    files = []
    for index, (name, data) in enumerate([
        ("a.png", encode("PNG", size=(20, 9))),
        ("b.jpg", encode("JPEG", size=(5, 11))),
        ("c.bmp", encode("BMP", "L")),
        ("d.gif", animated_gif()),
        ("e.jpg", encode("PNG", "RGBA")),  # A PNG behind a .jpg name.
    ]):
        (tmp_path / name).write_bytes(data)
        files.append(str(tmp_path / name))
    examples = sources.Examples(
        labels=np.arange(len(files)) % NUM_CLASSES, files=np.asarray(files, object)
    )
    images = pixels(make(examples, image_size=12, channels=3))
    assert images.shape == (len(files), 12, 12, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255
    np.testing.assert_allclose(images[0], np.broadcast_to(COLOR, (12, 12, 3)))
    np.testing.assert_allclose(images[4], np.broadcast_to(COLOR, (12, 12, 3)))


FORMATS = {
    "png": lambda: encode("PNG"),
    "jpeg": lambda: encode("JPEG"),
    "bmp": lambda: encode("BMP"),
    "gif": animated_gif,  # Decoding keeps the first frame, COLOR.
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_decode_image_rgb(fmt):
    image = pipeline.decode_image(tf.constant(FORMATS[fmt]()), 3, 8)
    assert image.dtype == tf.float32 and image.shape == (8, 8, 3)
    np.testing.assert_allclose(image.numpy(), np.broadcast_to(COLOR, (8, 8, 3)),
                               atol=3)  # JPEG is lossy.


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_decode_image_grayscale_in_a_graph(fmt):
    # The exported serving signature runs decode_image inside a tf.function.
    decode = tf.function(lambda contents: pipeline.decode_image(contents, 1, 8))
    image = decode(tf.constant(FORMATS[fmt]()))
    assert image.dtype == tf.float32 and image.shape == (8, 8, 1)
    np.testing.assert_allclose(image.numpy(), np.full((8, 8, 1), GREY), atol=3)


def test_decode_image_keeps_grayscale_pixels():
    image = pipeline.decode_image(tf.constant(encode("PNG", "L", color=(90, 90, 90))),
                                  1, 4)
    np.testing.assert_array_equal(image.numpy(), np.full((4, 4, 1), 90.0))
