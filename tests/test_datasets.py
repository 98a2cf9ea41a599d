"""Dataset sources, class selection, splits and class weights, on real data:
scikit-learn's digits, tiny image folders and a locally prepared TFDS dataset."""

import collections
import os
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from sklearn.utils.class_weight import compute_class_weight

from keras_transfer.data import sources
from keras_transfer.data import tasks
from keras_transfer.data import image_folder
from keras_transfer.data import splits
from keras_transfer.config import ConfigError

FRACTIONS = dict(validation_fraction=0.2, test_fraction=0.2)


def load_digits_task(classes=None, role="target", seed=0, **kwargs):
    return tasks.load_task(
        "digits", classes, role=role, seed=seed, **{**FRACTIONS, **kwargs}
    )


def image_keys(examples):
    """A multiset of (pixels, label), so splits compare by content."""
    return collections.Counter(
        (image.tobytes(), int(label))
        for image, label in zip(examples.images, examples.labels)
    )


def all_splits(data):
    return (data.train, data.validation, data.test)


# --- digits -----------------------------------------------------------------


def test_digits_default_target_classes_are_5_to_9():
    data = load_digits_task()
    assert data.class_names == ("5", "6", "7", "8", "9")
    assert data.num_classes == 5


def test_digits_default_source_classes_are_0_to_4():
    data = load_digits_task(role="source")
    assert data.class_names == ("0", "1", "2", "3", "4")


def test_digits_images_are_uint8_pixels():
    data = load_digits_task()
    for split in all_splits(data):
        assert split.images.dtype == np.uint8
        assert split.images.shape == (len(split), 8, 8, 1)
        assert split.files is None
    # 0-16 intensities must arrive scaled to the full 0-255 range.
    assert data.train.images.min() == 0
    assert data.train.images.max() == 255
    assert (data.channels, data.native_size) == (1, 8)


def test_digits_splits_are_stratified():
    data = load_digits_task()
    totals = sum(
        np.bincount(split.labels, minlength=5) for split in all_splits(data)
    )
    for split, fraction in ((data.validation, 0.2), (data.test, 0.2)):
        counts = np.bincount(split.labels, minlength=5)
        assert np.all(np.abs(counts - fraction * totals) <= 1.5), counts
    assert np.all(np.bincount(data.train.labels, minlength=5) > 0)


def test_digits_splits_partition_the_selected_examples():
    data = load_digits_task()
    names, source, _ = sources.load_source("digits")
    wanted = np.isin(source.labels, [5, 6, 7, 8, 9])
    expected = collections.Counter(
        (image.tobytes(), int(label) - 5)
        for image, label in zip(source.images[wanted], source.labels[wanted])
    )
    train, validation, test = map(image_keys, all_splits(data))
    assert not train & validation and not train & test and not validation & test
    assert train + validation + test == expected


def test_digits_splits_are_deterministic_for_a_seed():
    first, again, other = (load_digits_task(seed=seed) for seed in (1, 1, 2))
    for a, b in zip(all_splits(first), all_splits(again)):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
    assert image_keys(first.test) != image_keys(other.test)


def test_examples_per_class_caps_only_the_train_split():
    full = load_digits_task()
    capped = load_digits_task(examples_per_class=4)
    assert np.all(np.bincount(capped.train.labels, minlength=5) == 4)
    assert image_keys(capped.train) <= image_keys(full.train)
    assert image_keys(capped.validation) == image_keys(full.validation)
    assert image_keys(capped.test) == image_keys(full.test)


def test_classes_select_and_relabel_in_given_order():
    data = load_digits_task(classes=("7", "5"))
    assert data.class_names == ("7", "5")
    _, source, _ = sources.load_source("digits")
    sevens = {image.tobytes() for image in source.images[source.labels == 7]}
    fives = {image.tobytes() for image in source.images[source.labels == 5]}
    for split in all_splits(data):
        assert set(np.unique(split.labels)) == {0, 1}
        for image, label in zip(split.images, split.labels):
            assert image.tobytes() in (sevens if label == 0 else fives)


@pytest.mark.parametrize("role,flag", [("target", "classes"),
                                       ("source", "source_classes")])
def test_missing_class_names_the_flag_and_value(role, flag):
    with pytest.raises(splits.SplitError) as raised:
        load_digits_task(classes=("5", "42"), role=role)
    assert isinstance(raised.value, ConfigError)
    message = str(raised.value)
    assert f"Received: {flag}=5,42" in message
    assert "'42'" in message


def test_large_fractions_keep_every_class_in_every_split():
    images = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1)
    examples = sources.Examples(labels=np.array([0, 0, 0, 1, 1, 1]), images=images)
    parts = splits.stratified_split(examples, ["a", "b"], 0.5, 0.5, 0, "dataset")
    for part in parts:
        assert sorted(part.labels) == [0, 1]


def test_balanced_class_weights_match_scikit_learn():
    labels = np.array([0] * 7 + [1] * 2 + [2] * 11 + [3] * 4)
    expected = compute_class_weight("balanced", classes=np.arange(4), y=labels)
    weights = splits.class_weights(labels, 4)
    assert sorted(weights) == [0, 1, 2, 3]
    np.testing.assert_allclose([weights[i] for i in range(4)], expected)


# --- folders ------------------------------------------------------------------


def write_image(path, fmt=None, size=(6, 5), color=(200, 100, 50)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return str(path)


def write_text(path, text="not an image"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def make_class_folders(root, counts):
    for name, count in counts.items():
        for index in range(count):
            write_image(root / name / f"{index}.png", color=(index * 20, 0, 0))
    return str(root)


def test_folder_finds_images_and_skips_hidden_and_other_files(tmp_path):
    cats = tmp_path / "cats"
    expected_cats = [
        write_image(cats / "a.png"),
        write_image(cats / "b.JPG", "JPEG"),
        write_image(cats / "c.PNG", "PNG"),
        write_image(cats / "d.jpeg", "JPEG"),
        write_image(cats / "e.bmp"),
        write_image(cats / "f.gif"),
        write_image(cats / "nested" / "g.png"),
    ]
    expected_dogs = [write_image(tmp_path / "dogs" / "x.Png", "PNG")]
    write_image(cats / ".hidden.png", "PNG")
    write_image(cats / ".ipynb_checkpoints" / "a-checkpoint.png", "PNG")
    write_text(cats / ".DS_Store")
    write_text(cats / "notes.txt")
    write_image(tmp_path / ".ipynb_checkpoints" / "stray.png", "PNG")
    write_image(tmp_path / "__MACOSX" / "stray.png", "PNG")
    write_text(tmp_path / ".DS_Store")
    write_text(tmp_path / "README.txt")

    names, paths, labels = image_folder.discover(str(tmp_path))

    assert names == ["cats", "dogs"]
    assert paths == sorted(expected_cats) + expected_dogs
    assert labels == [0] * len(expected_cats) + [1]


def test_folder_without_class_subfolders_is_an_error(tmp_path):
    write_image(tmp_path / "loose.png")
    write_image(tmp_path / ".ipynb_checkpoints" / "a.png", "PNG")
    with pytest.raises(image_folder.FolderLayoutError, match="no class subfolders"
                       ) as raised:
        image_folder.discover(str(tmp_path))
    assert_one_line_naming(raised.value, str(tmp_path))


def test_folder_with_a_single_class_is_an_error(tmp_path):
    make_class_folders(tmp_path, {"only": 3})
    with pytest.raises(image_folder.FolderLayoutError, match="two class") as raised:
        image_folder.discover(str(tmp_path))
    assert_one_line_naming(raised.value, str(tmp_path))


def test_empty_class_folder_is_an_error(tmp_path):
    make_class_folders(tmp_path, {"cats": 3})
    write_text(tmp_path / "dogs" / "notes.txt")
    write_text(tmp_path / "dogs" / ".DS_Store")
    with pytest.raises(image_folder.FolderLayoutError, match="no images") as raised:
        image_folder.discover(str(tmp_path))
    assert_one_line_naming(raised.value, str(tmp_path / "dogs"))


def test_missing_folder_is_an_error(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(image_folder.FolderLayoutError) as raised:
        tasks.load_task(missing, None, role="target", seed=0, **FRACTIONS)
    assert_one_line_naming(raised.value, missing)


def assert_one_line_naming(error, folder):
    message = str(error)
    assert "\n" not in message
    assert folder in message


def test_class_with_fewer_than_three_examples_is_an_error(tmp_path):
    root = make_class_folders(tmp_path, {"cats": 5, "dogs": 2})
    with pytest.raises(image_folder.FolderLayoutError, match="at least 3") as raised:
        tasks.load_task(root, None, role="target", seed=0, **FRACTIONS)
    assert_one_line_naming(raised.value, str(tmp_path / "dogs"))
    assert "2 usable image" in str(raised.value)
    # Leaving the thin class out with --classes is fine.
    make_class_folders(tmp_path, {"owls": 4})
    data = tasks.load_task(root, ("cats", "owls"), role="target", seed=0, **FRACTIONS)
    assert data.class_names == ("cats", "owls")


def test_load_task_on_a_folder_gives_files(tmp_path):
    root = make_class_folders(tmp_path, {"cats": 5, "dogs": 5, "owls": 5})
    data = tasks.load_task(root, None, role="target", seed=0, **FRACTIONS)
    assert data.class_names == ("cats", "dogs", "owls")
    assert (data.channels, data.native_size) == (3, None)
    files = [f for split in all_splits(data) for f in split.files]
    assert sorted(files) == sorted(
        str(tmp_path / name / f"{i}.png") for name in data.class_names for i in range(5)
    )
    for split in all_splits(data):
        assert split.images is None
        assert sorted(set(split.labels)) == [0, 1, 2]
        for path, label in zip(split.files, split.labels):
            assert os.path.basename(os.path.dirname(path)) == data.class_names[label]


# --- TFDS ---------------------------------------------------------------------

TINY_SHAPES = ("circle", "square", "triangle")


class KtTinyShapes(tfds.core.GeneratorBasedBuilder):
    """3 classes x 8 grey 8x8 images; each image's pixel value is unique."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        # DatasetInfo directly: `dataset_info_from_configs` looks for metadata
        # files next to the builder's module, which a test module lacks.
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 1)),
                "label": tfds.features.ClassLabel(names=TINY_SHAPES),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(range(0, 6)),
            "test": self._generate_examples(range(6, 8)),
        }

    def _generate_examples(self, indices):
        for label in range(len(TINY_SHAPES)):
            for index in indices:
                image = np.full((8, 8, 1), tiny_shape_value(label, index), np.uint8)
                yield f"{label}-{index}", {"image": image, "label": label}


def tiny_shape_value(label, index):
    return 10 * label + index


class KtOfflineShapes(KtTinyShapes):
    """Needs a download; the URL is a closed localhost port, never the network."""

    def _split_generators(self, dl_manager):
        dl_manager.download("http://127.0.0.1:9/nothing.zip")
        return {"train": self._generate_examples(range(8))}


class KtMixedSizes(tfds.core.GeneratorBasedBuilder):
    """Photos of different sizes, as tf_flowers has: 2 classes x 4 RGB images."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.ClassLabel(names=("dark", "light")),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for label in range(2):
            for index, (height, width) in enumerate(((6, 9), (12, 10), (10, 10), (20, 7))):
                image = np.full((height, width, 3), 50 + 150 * label, np.uint8)
                yield f"{label}-{index}", {"image": image, "label": label}


def test_tfds_images_of_different_sizes_are_held_at_one_size(tmp_path):
    tfds.builder("kt_mixed_sizes", data_dir=str(tmp_path)).download_and_prepare()
    data = tasks.load_task("tfds:kt_mixed_sizes", None, role="target", seed=0,
                              tfds_data_dir=str(tmp_path), **FRACTIONS)
    assert data.native_size == 11  # The median longer side.
    for split in all_splits(data):
        assert split.images.shape[1:] == (11, 11, 3)
        for image, label in zip(split.images, split.labels):
            assert np.all(image == 50 + 150 * label)


def test_tfds_unknown_name_is_a_dataset_error(tmp_path):
    start = time.monotonic()
    with pytest.raises(sources.DatasetError, match="kt_no_such_dataset"):
        tasks.load_task("tfds:kt_no_such_dataset", None, role="target", seed=0,
                           tfds_data_dir=str(tmp_path), **FRACTIONS)
    assert time.monotonic() - start < 10


def test_tfds_prepared_dataset_loads_every_example(tmp_path):
    tfds.builder("kt_tiny_shapes", data_dir=str(tmp_path)).download_and_prepare()
    data = tasks.load_task("tfds:kt_tiny_shapes", None, role="target", seed=0,
                              tfds_data_dir=str(tmp_path), **FRACTIONS)
    assert data.class_names == TINY_SHAPES
    assert (data.channels, data.native_size) == (1, 8)
    loaded = sorted(
        (int(image[0, 0, 0]), int(label))
        for split in all_splits(data)
        for image, label in zip(split.images, split.labels)
    )
    assert loaded == sorted(
        (tiny_shape_value(label, index), label) for label in range(3) for index in range(8)
    )


def test_tfds_split_names_select_what_is_pooled(tmp_path):
    tfds.builder("kt_tiny_shapes", data_dir=str(tmp_path)).download_and_prepare()
    load = lambda split: tasks.load_task(  # noqa: E731
        "tfds:kt_tiny_shapes", None, role="target", seed=0, tfds_data_dir=str(tmp_path),
        tfds_split=split, **FRACTIONS)
    train_only = load("train")
    values = {int(image[0, 0, 0]) for split in all_splits(train_only) for image in split.images}
    assert values == {tiny_shape_value(label, i) for label in range(3) for i in range(6)}
    assert sum(train_only.split_sizes().values()) == 18
    assert sum(load("train+test").split_sizes().values()) == 24
    with pytest.raises(sources.DatasetError, match="has no split validation") as raised:
        load("validation")
    assert "test, train" in str(raised.value)


def test_tfds_offline_mode_never_downloads(tmp_path):
    with pytest.raises(sources.DatasetError, match="KERAS_TRANSFER_OFFLINE") as raised:
        tasks.load_task("tfds:kt_offline_shapes", None, role="target", seed=0,
                           tfds_data_dir=str(tmp_path), **FRACTIONS)
    assert str(tmp_path) in str(raised.value)


def test_tfds_download_offline_fails_fast_naming_dataset_and_dir(tmp_path, monkeypatch):
    # The real download path, against a closed localhost port.
    monkeypatch.delenv(sources.OFFLINE_ENV)
    start = time.monotonic()
    with pytest.raises(sources.DatasetError) as raised:
        tasks.load_task("tfds:kt_offline_shapes", None, role="target", seed=0,
                           tfds_data_dir=str(tmp_path), **FRACTIONS)
    assert time.monotonic() - start < 10
    message = str(raised.value)
    assert "tfds:kt_offline_shapes" in message
    assert str(tmp_path) in message


def test_a_tfds_failure_says_what_failed_and_what_installs_a_missing_module():
    missing = ModuleNotFoundError("No module named 'apache_beam'", name="apache_beam")
    assert sources._why(missing) == (
        "its builder needs the module apache_beam, not installed: pip install apache-beam")
    assert sources._why(OSError("connection refused\nmore")) == "OSError: connection refused"
