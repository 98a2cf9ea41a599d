"""The exported signatures: what a serving client sends and what it gets back.

Three entry points share one answer:
- `serving_default` takes `image_bytes`, a batch of encoded JPEG/PNG/BMP/GIF
  strings (what a REST client sends as `{"b64": ...}`), and decodes and resizes
  them in the graph exactly as training did (`pipeline.decode_image`);
- `serving_pixels` takes `pixels`, a float32 batch [batch, height, width,
  channels] of 0-255 values of any size (JSON integers are accepted as they
  are); the model resizes them itself;
- `serving_pixels_uint8` takes the same as uint8, a quarter of the bytes for
  gRPC clients that hold decoded images.

All return `probabilities` (float32, one column per class in `labels.txt`
order), `label` and `score` (the top class) and `top_k_labels`/`top_k_scores`
(the best k = min(5, classes), best first). Pixels of another channel count,
NaN or Inf, a non-list `image_bytes`, and encoded images whose header declares
more than the run's `--max_megapixels` are refused (InvalidArgumentError); an
empty batch gets empty outputs.
"""

import tensorflow as tf

from keras_transfer.data import pipeline

IMAGE_BYTES_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "serving_pixels"
UINT8_PIXELS_SIGNATURE = "serving_pixels_uint8"
MAX_TOP_K = 5


def top_k_for(num_classes):
    return min(MAX_TOP_K, num_classes)


def describe(num_classes, channels):
    """Names, dtypes and shapes of the signatures, for the model card and docs."""
    k = top_k_for(num_classes)
    outputs = {
        "probabilities": ["float32", [None, num_classes]],
        "label": ["string", [None]],
        "score": ["float32", [None]],
        "top_k_labels": ["string", [None, k]],
        "top_k_scores": ["float32", [None, k]],
    }
    return {
        IMAGE_BYTES_SIGNATURE: {
            "inputs": {"image_bytes": ["string", [None]]},
            "outputs": outputs,
        },
        PIXELS_SIGNATURE: {
            "inputs": {"pixels": ["float32", [None, None, None, channels]]},
            "outputs": outputs,
        },
        UINT8_PIXELS_SIGNATURE: {
            "inputs": {"pixels": ["uint8", [None, None, None, channels]]},
            "outputs": outputs,
        },
    }


def _answer(probabilities, labels_table, k):
    probabilities = tf.cast(probabilities, tf.float32)
    # top_k orders ties by index, as argmax does: `label` is top_k_labels[:, 0].
    top = tf.math.top_k(probabilities, k=k)
    indices = tf.cast(top.indices, tf.int64)
    return {
        "probabilities": probabilities,
        "label": labels_table.lookup(indices[:, 0]),
        "score": top.values[:, 0],
        "top_k_labels": labels_table.lookup(indices),
        "top_k_scores": top.values,
    }


def _checked_pixels(pixels, channels):
    """Refuses what would otherwise come back as a confident wrong answer.

    Neither TF Serving nor a loaded signature holds a request to the declared
    shape, and the model's own colour conversion keeps the first channel of
    whatever it gets: 3-channel pixels sent to a grayscale model would be
    answered from their red channel alone. NaN or Inf would come back as
    NaN probabilities (invalid JSON) or as an ordinary-looking label.
    """
    pixels = tf.ensure_shape(pixels, [None, None, None, channels],
                             name=f"pixels_have_{channels}_channels")
    return tf.debugging.check_numerics(
        pixels, "pixels must be finite numbers (0-255), not NaN or Inf")


def _header_bytes(contents, count):
    """The first `count` bytes as integers, zero-padded when the file is shorter."""
    padded = tf.strings.join([tf.strings.substr(contents, 0, count), "\0" * count])
    return tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, count), tf.uint8), tf.int64)


def _number(header, start, length, big_endian):
    digits = header[start:start + length]
    if big_endian:
        digits = digits[::-1]
    return tf.reduce_sum(digits * tf.bitwise.left_shift(tf.constant(1, tf.int64),
                                                        8 * tf.range(length, dtype=tf.int64)))


def _webp_pixels(header):
    """Width x height of a WebP's first chunk (as `image_headers._webp_size`
    reads it); -1 for a chunk the header reader does not know."""
    def chunk_is(name):
        return tf.reduce_all(tf.equal(header[12:16], tf.constant(list(name), tf.int64)))

    b1, b2, b3 = header[22], header[23], header[24]
    lossless = ((1 + (header[21] + tf.bitwise.left_shift(tf.bitwise.bitwise_and(b1, 0x3F), 8)))
                * (1 + (tf.bitwise.right_shift(b1, 6) + tf.bitwise.left_shift(b2, 2)
                        + tf.bitwise.left_shift(tf.bitwise.bitwise_and(b3, 0x0F), 10))))
    lossy = (tf.bitwise.bitwise_and(_number(header, 26, 2, False), 0x3FFF)
             * tf.bitwise.bitwise_and(_number(header, 28, 2, False), 0x3FFF))
    extended = (1 + _number(header, 24, 3, False)) * (1 + _number(header, 27, 3, False))
    pixels = tf.constant(-1, tf.int64)
    for name, declared in ((b"VP8 ", lossy), (b"VP8L", lossless), (b"VP8X", extended)):
        pixels = tf.where(chunk_is(name), declared, pixels)
    return pixels


def header_pixels(contents):
    """Width x height that an encoded image's header declares, read without
    decoding it (JPEG, PNG, GIF, BMP, WebP); -1 for a WebP whose header this
    reader does not know (refused: its size cannot be checked), 0 for what
    is no image (the decoder refuses it)."""
    header = _header_bytes(contents, 30)

    def starts_with(signature, at=0):
        return tf.reduce_all(tf.equal(header[at:at + len(signature)],
                                      tf.constant(list(signature), tf.int64)))

    bmp_height = _number(header, 22, 4, False)  # Signed: negative means top-down.
    bmp_height = tf.abs(tf.where(bmp_height >= 2 ** 31, bmp_height - 2 ** 32, bmp_height))
    candidates = [
        (starts_with(b"\x89PNG"), _number(header, 16, 4, True) * _number(header, 20, 4, True)),
        (starts_with(b"GIF8"), _number(header, 6, 2, False) * _number(header, 8, 2, False)),
        (starts_with(b"BM"), _number(header, 18, 4, False) * bmp_height),
        (tf.logical_and(starts_with(b"RIFF"), starts_with(b"WEBP", at=8)),
         _webp_pixels(header)),
    ]
    pixels = tf.constant(0, tf.int64)
    for matches, declared in candidates:
        pixels = tf.where(matches, declared, pixels)
    return tf.cond(
        starts_with(b"\xff\xd8"),  # The JPEG reader finds its frame header itself.
        lambda: tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64)),
        lambda: pixels)


def _within(contents, max_megapixels):
    """`contents`, once its header is within the export's pixel limit: a
    400 kB PNG can declare 20,000 x 20,000 pixels, 1.2 GB once decoded."""
    limit = int(max_megapixels * 1e6)
    pixels = header_pixels(contents)
    known = tf.debugging.assert_greater_equal(
        pixels, tf.constant(0, tf.int64),
        message="a WebP whose header does not declare its size in a known chunk "
                "(VP8, VP8L, VP8X); not decoded")
    check = tf.debugging.assert_less_equal(
        pixels, tf.constant(limit, tf.int64),
        message=f"image larger than {max_megapixels:g} megapixels, the limit of this "
                "export (--max_megapixels of its run); not decoded")
    with tf.control_dependencies([known, check]):
        return tf.identity(contents)


def _forward(model, channels):
    """The model on checked pixels, as one `tf.function` every signature of
    it shares (each would otherwise trace its own copy: for ResNet50 most
    of the export's time and size)."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)])
    def forward(pixels):
        pixels = _checked_pixels(pixels, channels)
        count = tf.shape(pixels)[0]
        # oneDNN's convolutions fail on an empty batch with a misleading
        # "input depth" error (TF 2.21): run one blank image, return none.
        filled = tf.cond(count > 0, lambda: pixels,
                         lambda: tf.zeros([1, 1, 1, channels], tf.float32))
        return model(filled, training=False)[:count]

    return forward


def _image_bytes_endpoint(archive, name, forward, labels_table, k, *, image_size, channels,
                          max_megapixels):
    def serve_image_bytes(image_bytes):
        # A scalar or nested request (REST "inputs" with one value) is
        # refused by name rather than failing inside map_fn.
        image_bytes = tf.ensure_shape(image_bytes, [None], name="image_bytes_is_a_list")
        # map_fn because images of one batch may differ in size and format;
        # an undecodable one fails the whole call with InvalidArgumentError.
        images = tf.map_fn(
            lambda contents: pipeline.decode_image(_within(contents, max_megapixels),
                                                   channels, image_size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([image_size, image_size, channels], tf.float32),
        )
        return _answer(forward(images), labels_table, k)

    archive.add_endpoint(
        name, serve_image_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )


def task_signature(task_name):
    """`--export_heads=all`: the signature of a multi-task run's other task."""
    return f"serving_{task_name}"


def add_task_endpoint(archive, task_name, model, labels_table, *, image_size, channels,
                      max_megapixels):
    """A multi-task run's other task (`--export_heads=all`): its head as
    `serving_<task>`, taking `image_bytes` as `serving_default` does and
    answering with its own labels."""
    _image_bytes_endpoint(archive, task_signature(task_name), _forward(model, channels),
                          labels_table, top_k_for(model.outputs[0].shape[-1]),
                          image_size=image_size, channels=channels,
                          max_megapixels=max_megapixels)


def add_endpoints(archive, model, labels_table, *, image_size, channels, max_megapixels):
    """Adds the signatures to a `keras.export.ExportArchive`.

    `image_size` is the square size encoded images are decoded and resized to
    before the model (which resizes again to its own input size, a no-op when
    the two agree). Encoded images declaring more than `max_megapixels` are
    refused before decoding.
    """
    k = top_k_for(model.outputs[0].shape[-1])
    forward = _forward(model, channels)
    _image_bytes_endpoint(archive, IMAGE_BYTES_SIGNATURE, forward, labels_table, k,
                          image_size=image_size, channels=channels,
                          max_megapixels=max_megapixels)

    def serve_pixels(pixels):
        return _answer(forward(pixels), labels_table, k)

    def serve_uint8_pixels(pixels):
        return serve_pixels(tf.cast(pixels, tf.float32))

    archive.add_endpoint(
        PIXELS_SIGNATURE, serve_pixels,
        input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32,
                                       name="pixels")],
    )
    archive.add_endpoint(
        UINT8_PIXELS_SIGNATURE, serve_uint8_pixels,
        input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8,
                                       name="pixels")],
    )
