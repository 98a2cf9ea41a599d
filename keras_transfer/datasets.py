"""Dataset sources -> labelled examples, class names and fixed splits.

Sources: `digits` (scikit-learn's embedded handwritten digits),
`fashion_mnist` (Debian's `dataset-fashion-mnist` idx files), `tfds:NAME`
(tensorflow-datasets) and a folder with one subfolder per class. In-memory
sources give uint8 pixel arrays; folders give file paths that the pipeline
decodes. Splits are stratified and fixed by the seed.
"""

import contextlib
import dataclasses
import gzip
import os
from typing import Optional, Tuple

import numpy as np

from keras_transfer import image_folder, splits
from keras_transfer.config import ConfigError

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)
# The embedded datasets' default transfer setup: the source task is the first
# five classes, the target task the last five (the Keras MNIST transfer example).
EMBEDDED_SOURCE_CLASSES = {"digits": (0, 1, 2, 3, 4), "fashion_mnist": (0, 1, 2, 3, 4)}
EMBEDDED_TARGET_CLASSES = {"digits": (5, 6, 7, 8, 9), "fashion_mnist": (5, 6, 7, 8, 9)}


class DatasetError(ConfigError):
    """A dataset cannot be loaded as asked; the message says why."""


@dataclasses.dataclass(frozen=True)
class Examples:
    """Labelled examples: either `images` (uint8 NHWC) or `files` (paths)."""

    labels: np.ndarray
    images: Optional[np.ndarray] = None
    files: Optional[np.ndarray] = None

    def __len__(self):
        return len(self.labels)

    def take(self, indices):
        return Examples(
            labels=self.labels[indices],
            images=None if self.images is None else self.images[indices],
            files=None if self.files is None else self.files[indices],
        )


@dataclasses.dataclass(frozen=True)
class LabelledData:
    """A task: class names and its train/validation/test splits."""

    name: str
    class_names: Tuple[str, ...]
    train: Examples
    validation: Examples
    test: Examples
    channels: int
    native_size: Optional[int]

    @property
    def num_classes(self):
        return len(self.class_names)

    def split_sizes(self):
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def _load_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 0-16 intensities scaled to the 0-255 pixels every backbone expects.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    names = tuple(str(name) for name in digits.target_names)
    return names, Examples(labels=digits.target.astype(np.int64), images=images)


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_idx(directory, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(directory, name)):
            return os.path.join(directory, name)
    return None


def _load_fashion_mnist():
    for directory in FASHION_MNIST_DIRS:
        stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
        paths = [_find_idx(directory, stem) for stem in stems]
        if all(paths):
            arrays = [_read_idx(path) for path in paths]
            images = np.concatenate([arrays[0], arrays[2]])[..., None]
            labels = np.concatenate([arrays[1], arrays[3]]).astype(np.int64)
            return FASHION_MNIST_CLASSES, Examples(labels=labels, images=images)
    raise DatasetError(
        "dataset=fashion_mnist needs the idx files of Debian's package "
        "dataset-fashion-mnist (apt-get install dataset-fashion-mnist); none "
        f"found in {list(FASHION_MNIST_DIRS)}"
    )


# tfds retries a failed download 10 times with exponential backoff, about 3.5
# minutes, before it reports the failure; offline, every retry fails the same way.
TFDS_DOWNLOAD_RETRIES = 2


@contextlib.contextmanager
def _bounded_download_retries(retries):
    from tensorflow_datasets.core.download import downloader

    saved = getattr(downloader, "MAX_RETRIES", None)
    downloader.MAX_RETRIES = retries
    try:
        yield
    finally:
        if saved is not None:
            downloader.MAX_RETRIES = saved


def _prepare_tfds(builder, name):
    try:
        with _bounded_download_retries(TFDS_DOWNLOAD_RETRIES):
            builder.download_and_prepare()
    except Exception as error:
        raise DatasetError(
            f"dataset=tfds:{name} is not prepared in the TFDS data directory "
            f"{builder.data_dir!r} and could not be downloaded or generated "
            f"({type(error).__name__}). Prepare it where there is network "
            f"(`tfds build {name} --data_dir=DIR`) and pass --tfds_data_dir=DIR"
        ) from None


def _tfds_label_feature(builder, name):
    """The supervised label feature, which must be a ClassLabel."""
    import tensorflow_datasets as tfds

    keys = builder.info.supervised_keys
    feature = builder.info.features[keys[1]] if keys and len(keys) == 2 else None
    if not isinstance(feature, tfds.features.ClassLabel):
        raise DatasetError(
            f"dataset=tfds:{name} must have supervised (image, class label) "
            f"pairs. Received: supervised_keys={keys!r}"
        )
    return feature


def _load_tfds(name, data_dir):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError.
        raise DatasetError(f"dataset=tfds:{name}: {error}".splitlines()[0]) from None
    if not builder.is_prepared():
        _prepare_tfds(builder, name)
    label_feature = _tfds_label_feature(builder, name)
    images, labels = [], []
    for split in sorted(builder.info.splits):
        for image, label in tfds.as_numpy(
            builder.as_dataset(split=split, as_supervised=True)
        ):
            images.append(image if image.ndim == 3 else image[..., None])
            labels.append(label)
    if len({image.shape for image in images}) != 1:
        raise DatasetError(
            f"dataset=tfds:{name} has images of different sizes; export it as a "
            "folder of class subfolders and pass that folder as --dataset"
        )
    return tuple(label_feature.names), Examples(
        labels=np.asarray(labels, np.int64), images=np.stack(images).astype(np.uint8)
    )


def _load_folder(root, flag_name):
    names, paths, labels = image_folder.discover(root, flag_name)
    return tuple(names), Examples(
        labels=np.asarray(labels, np.int64), files=np.asarray(paths, dtype=object)
    )


def load_source(spec, tfds_data_dir=None, flag_name="dataset"):
    """Returns (class_names, all examples) of a dataset spec."""
    if spec == "digits":
        return _load_digits()
    if spec == "fashion_mnist":
        return _load_fashion_mnist()
    if spec.startswith("tfds:"):
        return _load_tfds(spec[len("tfds:"):], tfds_data_dir)
    return _load_folder(spec, flag_name)


def _default_classes(spec, role):
    table = EMBEDDED_SOURCE_CLASSES if role == "source" else EMBEDDED_TARGET_CLASSES
    return table.get(spec)


def load_task(spec, classes, *, role, seed, validation_fraction, test_fraction,
              examples_per_class=0, tfds_data_dir=None):
    """Loads a dataset spec as a task with fixed, stratified splits.

    Args:
      spec: `digits`, `fashion_mnist`, `tfds:NAME` or a folder.
      classes: class names to keep, or None for the default (embedded datasets:
        classes 5-9 as the target, 0-4 as the source; otherwise all).
      role: "target" or "source"; chooses the default classes and flag names.
      examples_per_class: cap on training examples per class (0: no cap).

    Returns:
      A `LabelledData`.
    """
    flag = "dataset" if role == "target" else "source_dataset"
    class_flag = "classes" if role == "target" else "source_classes"
    class_names, examples = load_source(spec, tfds_data_dir, flag)
    if classes is None:
        default = _default_classes(spec, role)
        classes = tuple(class_names[i] for i in default) if default else class_names
    class_names, examples = splits.select_classes(
        list(class_names), examples, list(classes), class_flag
    )
    train, validation, test = splits.stratified_split(
        examples, class_names, validation_fraction, test_fraction, seed, flag
    )
    train = splits.cap_per_class(train, examples_per_class, seed)
    if examples.images is not None:
        channels = examples.images.shape[-1]
        native_size = max(examples.images.shape[1:3])
    else:
        channels, native_size = 3, None
    return LabelledData(
        name=spec,
        class_names=tuple(class_names),
        train=train,
        validation=validation,
        test=test,
        channels=int(channels),
        native_size=None if native_size is None else int(native_size),
    )
