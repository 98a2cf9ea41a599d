"""Data: dataset sources, folders and their checks, splits, the `tf.data` pipeline."""
