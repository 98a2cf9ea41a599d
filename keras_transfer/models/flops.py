"""A model's floating-point operations per image, what distillation's report
compares a student's cost by (beside the export's measured speed)."""

import logging

import tensorflow as tf


def flops_per_image(model, image_size, channels):
    """Floating-point operations of one forward pass at `image_size`
    (multiply and add counted apart, as TensorFlow's profiler counts)."""
    # TensorFlow's graph profiler: Keras 3 has no operation count of its own.
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    from tensorflow.python.profiler import model_analyzer, option_builder

    forward = tf.function(lambda images: model(images, training=False))
    concrete = forward.get_concrete_function(
        tf.TensorSpec([1, image_size, image_size, channels], tf.float32))
    graph = convert_variables_to_constants_v2(concrete).graph
    options = option_builder.ProfileOptionBuilder(
        option_builder.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    # The profiler is TF1 code and says so on every call: not the user's concern.
    tensorflow_logger = logging.getLogger("tensorflow")
    level = tensorflow_logger.level
    tensorflow_logger.setLevel(logging.ERROR)
    try:
        return int(model_analyzer.profile(graph, options=options).total_float_ops)
    finally:
        tensorflow_logger.setLevel(level)
