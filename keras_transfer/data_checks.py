"""The checks of `--dataset`, `--source_dataset`, `--split_file` and
`--tfds_split` that need no data (`config.RunConfig` runs them with its
others; the data itself is checked where it is read, in `data/`)."""

import os

from keras_transfer.checks import require

EMBEDDED_DATASETS = ("digits", "fashion_mnist")


def validate_dataset_spec(name, value):
    if value is None:
        return
    require(bool(value), f"{name} must not be empty. Received: {name}={value!r}")
    if value in EMBEDDED_DATASETS or value.startswith("tfds:"):
        require(
            value != "tfds:",
            f"{name} needs a dataset name after 'tfds:'. Received: {name}={value!r}",
        )
        return
    require(
        os.path.isdir(value),
        f"{name} must be one of {list(EMBEDDED_DATASETS)}, 'tfds:NAME' or an "
        f"existing folder of class subfolders. Received: {name}={value!r}",
    )


def dataset_identity(dataset):
    """A folder dataset by its resolved path: `clean`, `clean/` and its absolute
    path are one folder (to a resumed run, to a cache key), a folder of that
    name elsewhere is not."""
    return os.path.realpath(dataset) if is_folder_spec(dataset) else dataset


def is_folder_spec(value):
    """True for a dataset spec that names a folder (not embedded, not TFDS)."""
    return value not in EMBEDDED_DATASETS and not value.startswith("tfds:")


def validate_data_options(config):
    if config.split_file is not None:
        require(
            is_folder_spec(config.dataset),
            "split_file pins the split of a folder dataset; dataset="
            f"{config.dataset} has a fixed content. Received: split_file={config.split_file!r}",
        )
        parent = os.path.dirname(os.path.abspath(config.split_file))
        require(
            os.path.isdir(parent) and not os.path.isdir(config.split_file),
            "split_file must be a file path in an existing folder. "
            f"Received: split_file={config.split_file!r}",
        )
    if config.tfds_split is not None:
        require(
            config.dataset.startswith("tfds:"),
            f"tfds_split selects splits of a tfds:NAME dataset. Received: "
            f"dataset={config.dataset!r}, tfds_split={config.tfds_split!r}",
        )
