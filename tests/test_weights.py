"""`--weights` resolution: ImageNet from Keras' cache or a fast clear error,
source pretraining, files, and what `auto` falls back to."""

import os
import time

import h5py
import numpy as np
import pytest

from conftest import TINY, run_python
from keras_transfer import config as config_lib
from keras_transfer.models import backbones
from keras_transfer.models import weights
from keras_transfer.models import classifier as model_lib
from keras_transfer.run import execute as run_lib


def _write_keras_notop_file(path, base):
    """Writes `base` in the legacy HDF5 layout Keras' ImageNet files use."""
    from keras.src.legacy.saving import legacy_h5_format

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, base)


def test_imagenet_without_cache_or_network_fails_fast_and_writes_nothing(tmp_path):
    output_dir = tmp_path / "run"
    start = time.time()
    result = run_python(
        ["-m", "keras_transfer.main", "--weights=imagenet", f"--output_dir={output_dir}"],
        env={"KERAS_HOME": str(tmp_path / "keras_home")},
    )
    assert result.returncode != 0
    assert time.time() - start < 60  # Dominated by importing TensorFlow.
    error = [line for line in result.stderr.splitlines() if "weights=imagenet" in line]
    assert error and "--weights=PATH" in error[0], result.stderr[-2000:]
    assert not output_dir.exists()


def test_imagenet_loads_from_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    spec = backbones.get("vgg16")
    staged = spec.build(32)
    cache_file = weights.imagenet_cache_path(spec)
    _write_keras_notop_file(cache_file, staged)
    config = config_lib.RunConfig(weights="imagenet")
    resolved = weights.resolve(config, 32)
    assert (resolved.kind, resolved.load) == ("imagenet", cache_file)
    classifier = model_lib.build_classifier(spec, 5, image_size=32, channels=1,
                                            base_weights=resolved.load)
    for loaded, expected in zip(model_lib.base_of(classifier).weights, staged.weights):
        np.testing.assert_array_equal(loaded, expected)


def test_auto_prefers_cached_imagenet_then_embedded_source(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    config = config_lib.RunConfig(cache_dir=str(tmp_path / "cache"))
    assert weights.resolve(config, 32).kind == "source"
    spec = backbones.get("vgg16")
    _write_keras_notop_file(weights.imagenet_cache_path(spec), spec.build(32))
    assert weights.resolve(config, 32).kind == "imagenet"


def test_source_cache_key_depends_on_settings(tmp_path):
    base = config_lib.RunConfig(cache_dir=str(tmp_path))
    same = config_lib.RunConfig(cache_dir=str(tmp_path), epochs=3)  # target-only setting
    other = config_lib.RunConfig(cache_dir=str(tmp_path), source_classes=("0", "1"))
    assert weights.source_cache_file(base, 32) == weights.source_cache_file(same, 32)
    assert weights.source_cache_file(base, 32) != weights.source_cache_file(other, 32)
    assert weights.source_cache_file(base, 32) != weights.source_cache_file(base, 64)
    # Settings that change what source pretraining learns or keeps.
    for change in (dict(label_smoothing=0.0), dict(dropout=0.5), dict(l2=1e-4),
                   dict(early_stopping_patience=0), dict(monitor="val_accuracy"),
                   dict(min_steps_per_epoch=40)):
        changed = config_lib.RunConfig(cache_dir=str(tmp_path), **change)
        assert weights.source_cache_file(changed, 32) != weights.source_cache_file(base, 32), change


def _folder_dataset(root):
    from PIL import Image

    for name in ("cats", "dogs"):
        os.makedirs(root / name)
        for index in range(4):
            pixels = np.full((8, 8, 3), 40 * index, np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return str(root)


def test_folder_without_source_task_needs_imagenet_or_a_path(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    dataset = _folder_dataset(tmp_path / "images")
    for requested, expected in (("auto", "weights=auto"), ("source", "weights=source")):
        config = config_lib.RunConfig(dataset=dataset, weights=requested)
        with pytest.raises(config_lib.ConfigError, match=expected):
            weights.resolve(config, 32)


@pytest.mark.parametrize("content", [b"not weights at all\n", b"\x89HDF\r\n\x1a\n" + b"\0" * 40,
                                     "another_backbone"])
def test_a_weights_file_that_does_not_fit_the_base_is_one_clear_error(tmp_path, content):
    path = tmp_path / "base.weights.h5"
    if content == "another_backbone":  # Real weights, of ResNet50's base, as Keras ships them.
        path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
        _write_keras_notop_file(str(path), backbones.get("resnet50").build(32))
    else:
        path.write_bytes(content)
    config = config_lib.RunConfig(weights=str(path), model="vgg16")
    with pytest.raises(weights.WeightsError, match=r"cannot be loaded into vgg16's base"):
        weights.resolve(config, 32)


@pytest.mark.parametrize("settings, shared", [
    (dict(source_classes=("5", "6"), classes=("5", "6", "7")), "5, 6 of digits"),
    (dict(source_classes=("0", "7")), "7 of digits"),  # Target: the default 5-9.
])
def test_a_source_task_on_the_target_classes_is_refused(settings, shared):
    config = config_lib.RunConfig(weights="source", **settings)
    with pytest.raises(weights.WeightsError, match=f"same dataset \\({shared}\\)"):
        weights.resolve(config, 32)
    # Apart from the target's classes, or another dataset: fine.
    assert weights.resolve(config_lib.RunConfig(weights="source", source_classes=("0", "1")),
                           32).kind == "source"


def test_weights_none_and_pretrain_are_random(tmp_path):
    assert weights.resolve(config_lib.RunConfig(weights="none"), 32).kind == "none"
    assert weights.resolve(config_lib.RunConfig(phase="pretrain"), 32).kind == "none"


def test_folder_run_with_explicit_source_dataset(tmp_path, cache_dir):
    dataset = _folder_dataset(tmp_path / "images")
    metrics = run_lib.run(config_lib.RunConfig(
        **{**TINY, "examples_per_class": 0}, dataset=dataset, image_size=32,
        source_dataset="digits", source_classes=("0", "1"), weights="source",
        test_fraction=0.25, validation_fraction=0.25,
        output_dir=str(tmp_path / "run"), cache_dir=cache_dir, phase="feature_extraction",
        export=False))
    assert metrics["weights"]["source_task"] == {"dataset": "digits", "classes": ["0", "1"]}
    assert metrics["class_names"] == ["cats", "dogs"]
    assert metrics["dataset"]["channels"] == 3
