"""Dataset sources -> labelled examples and class names.

Sources: `digits` (scikit-learn's embedded handwritten digits),
`fashion_mnist` (Debian's `dataset-fashion-mnist` idx files), `tfds:NAME`
(tensorflow-datasets) and a folder with one subfolder per class. In-memory
sources give uint8 pixel arrays; folders give file paths that the pipeline
decodes. `tasks.py` turns them into a task with fixed, stratified splits.
"""

import contextlib
import dataclasses
import gzip
import os
from typing import Optional, Tuple

import numpy as np

from keras_transfer.config import ConfigError
from keras_transfer.data import folders

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


def concatenate(first, second):
    """`first`'s examples then `second`'s (both in memory, or both files)."""
    if (first.images is None) != (second.images is None):
        raise ValueError("cannot join examples in memory with examples in files")
    join = (lambda a, b: None if a is None else np.concatenate([a, b]))
    return Examples(labels=np.concatenate([first.labels, second.labels]),
                    images=join(first.images, second.images),
                    files=join(first.files, second.files))


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
    # Folders: what was found, used and skipped (`folders.py`), and how a
    # `--split_file` was applied.
    report: Optional[dict] = None
    split_summary: Optional[dict] = None
    # The training split's examples beyond `--examples_per_class`: what
    # `--unlabeled_data=rest` trains on with their labels hidden.
    rest: Optional[Examples] = None
    # `--unlabeled_data=FOLDER`'s images (`unlabeled.py`), set by the run.
    unlabeled: Optional[Examples] = None

    @property
    def num_classes(self):
        return len(self.class_names)

    def class_counts(self):
        """{split: {class name: examples}}: the imbalance, at a glance."""
        return {
            split: {name: int(count) for name, count in zip(
                self.class_names,
                np.bincount(examples.labels, minlength=self.num_classes))}
            for split, examples in (("train", self.train), ("validation", self.validation),
                                    ("test", self.test))
        }

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


def _load_fashion_mnist_idx():
    for directory in FASHION_MNIST_DIRS:
        stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
        paths = [_find_idx(directory, stem) for stem in stems]
        if all(paths):
            arrays = [_read_idx(path) for path in paths]
            images = np.concatenate([arrays[0], arrays[2]])[..., None]
            labels = np.concatenate([arrays[1], arrays[3]]).astype(np.int64)
            return FASHION_MNIST_CLASSES, Examples(labels=labels, images=images)
    return None


def _load_fashion_mnist(tfds_data_dir):
    """Debian's idx files when installed, else TFDS' `fashion_mnist`."""
    loaded = _load_fashion_mnist_idx()
    if loaded is not None:
        return loaded
    try:
        _, examples = _load_tfds("fashion_mnist", tfds_data_dir)
    except DatasetError as error:
        raise DatasetError(
            "dataset=fashion_mnist needs the idx files of Debian's package "
            "dataset-fashion-mnist (apt-get install dataset-fashion-mnist; none "
            f"found in {list(FASHION_MNIST_DIRS)}) or TFDS' fashion_mnist, which "
            f"failed: {error}"
        ) from None
    return FASHION_MNIST_CLASSES, examples


# Set (to anything but 0) to keep every code path off the network.
OFFLINE_ENV = "KERAS_TRANSFER_OFFLINE"
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
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise DatasetError(
            f"dataset=tfds:{name} is not prepared in the TFDS data directory "
            f"{builder.data_dir!r}, and {OFFLINE_ENV} forbids downloading it. "
            f"Prepare it where there is network (`tfds build {name} "
            "--data_dir=DIR`) and pass --tfds_data_dir=DIR")
    try:
        with _bounded_download_retries(TFDS_DOWNLOAD_RETRIES):
            builder.download_and_prepare()
    except Exception as error:
        raise DatasetError(
            f"dataset=tfds:{name} is not prepared in the TFDS data directory "
            f"{builder.data_dir!r} and could not be downloaded or generated "
            f"({_why(error)}). Prepare it where there is network "
            f"(`tfds build {name} --data_dir=DIR`) and pass --tfds_data_dir=DIR"
        ) from None


def _why(error):
    """A failure in a few words: the missing module and what installs it, or
    the error's own first line."""
    if isinstance(error, ModuleNotFoundError) and error.name:
        package = error.name.split(".")[0].replace("_", "-")
        return f"its builder needs the module {error.name}, not installed: pip install {package}"
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


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


def _tfds_splits(builder, name, split):
    """The TFDS splits to read: `split` (TFDS syntax, e.g. `train+test`) or all."""
    if split is None:
        return sorted(builder.info.splits)
    parts = [part.split("[")[0] for part in split.split("+")]
    missing = [part for part in parts if part not in builder.info.splits]
    if missing:
        raise DatasetError(
            f"dataset=tfds:{name} has no split {', '.join(missing)} (it has "
            f"{', '.join(sorted(builder.info.splits))}). Received: tfds_split={split!r}")
    return [split]


def _load_tfds(name, data_dir, split=None):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError.
        raise DatasetError(f"dataset=tfds:{name}: {error}".splitlines()[0]) from None
    if not builder.is_prepared():
        _prepare_tfds(builder, name)
    label_feature = _tfds_label_feature(builder, name)
    images, labels = [], []
    for part in _tfds_splits(builder, name, split):
        for image, label in tfds.as_numpy(
            builder.as_dataset(split=part, as_supervised=True)
        ):
            images.append(image if image.ndim == 3 else image[..., None])
            labels.append(label)
    if len({image.shape for image in images}) != 1:
        images = _common_size(images)
    return tuple(label_feature.names), Examples(
        labels=np.asarray(labels, np.int64), images=np.stack(images).astype(np.uint8)
    )


# Photos of many sizes (tf_flowers) are held at one square size: their median
# side, at most the backbones' native 224, which the model would resize to anyway.
TFDS_MAX_COMMON_SIZE = 224


def _common_size(images):
    import tensorflow as tf

    side = int(min(np.median([max(image.shape[:2]) for image in images]),
                   TFDS_MAX_COMMON_SIZE))
    channels = max(image.shape[-1] for image in images)
    return [tf.cast(tf.round(tf.image.resize(
        np.repeat(image, channels, -1) if image.shape[-1] < channels else image,
        [side, side], antialias=True)), tf.uint8).numpy() for image in images]


def _load_folder(root, flag_name, policy, classes):
    names, paths, labels, report = folders.load(
        root, policy or folders.FolderPolicy(), flag_name, classes)
    return tuple(names), Examples(
        labels=np.asarray(labels, np.int64), files=np.asarray(paths, dtype=object)
    ), report


def load_source(spec, tfds_data_dir=None, flag_name="dataset", *, tfds_split=None,
                folder_policy=None, classes=None):
    """Returns (class_names, all examples, folder report or None) of a dataset spec."""
    if spec == "digits":
        return (*_load_digits(), None)
    if spec == "fashion_mnist":
        return (*_load_fashion_mnist(tfds_data_dir), None)
    if spec.startswith("tfds:"):
        return (*_load_tfds(spec[len("tfds:"):], tfds_data_dir, tfds_split), None)
    return _load_folder(spec, flag_name, folder_policy, classes)
