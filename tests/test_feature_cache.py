"""Phase 1 on recorded features equals phase 1 on pixels."""

import keras
import numpy as np
import pytest

from keras_transfer.models import backbones
from keras_transfer.data import tasks
from keras_transfer.training import feature_cache
from keras_transfer.data import pipeline
from keras_transfer.models import classifier as model_lib

SPEC = backbones.get("vgg16")


def classifier(seed, dropout=0.3):
    keras.utils.set_random_seed(seed)
    model = model_lib.build_classifier(SPEC, 5, image_size=32, channels=1, dropout=dropout)
    model_lib.set_trainable_for_phase(model, SPEC, "feature_extraction")
    return model


def compile_(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")


@pytest.mark.parametrize("min_steps", [1, 5])
def test_head_on_recorded_features_matches_training_on_pixels(tmp_path, min_steps):
    data = tasks.load_task("digits", None, role="target", seed=0, validation_fraction=0.1,
                              test_fraction=0.2, examples_per_class=8)
    settings = dict(num_classes=5, batch_size=16, image_size=32, channels=1)
    test_images = data.test.images[:20].astype(np.float32)

    on_pixels = classifier(seed=7)
    compile_(on_pixels)
    # The same global seed when each path builds its shuffled dataset and
    # starts training: the same batch order and the same dropout masks.
    keras.utils.set_random_seed(11)
    train = pipeline.make_dataset(data.train, training=True, seed=3, min_steps=min_steps,
                                  **settings)
    on_pixels.fit(train, epochs=3, verbose=0, shuffle=False)

    on_features = classifier(seed=7)
    trunk = feature_cache.trunk_of(on_features)
    path = str(tmp_path / "train")
    stored, reused = feature_cache.load_or_record(
        path, trunk, [pipeline.make_dataset(data.train, **settings)])
    assert not reused and stored.element_spec[0].shape == (1, 512)
    assert int(stored.cardinality()) == 40
    head = feature_cache.head_of(on_features)
    compile_(head)
    keras.utils.set_random_seed(11)
    head_train = feature_cache.feature_dataset(stored, batch_size=16, training=True, seed=3,
                                               min_steps=min_steps)
    # 40 examples at batch 16: 3 steps an epoch; at least 5: two passes, 5 steps.
    assert int(head_train.cardinality()) == int(train.cardinality()) == max(3, min_steps)
    head.fit(head_train, epochs=3, verbose=0, shuffle=False)

    # Training the head trained the classifier: the same predictions.
    np.testing.assert_allclose(on_features.predict(test_images, verbose=0),
                               on_pixels.predict(test_images, verbose=0), atol=1e-5)
    untrained = classifier(seed=7).predict(test_images, verbose=0)
    assert np.abs(on_features.predict(test_images, verbose=0) - untrained).max() > 1e-3

    again, reused = feature_cache.load_or_record(path, trunk, None)
    assert reused and all(np.array_equal(a, b) for a, b in zip(
        _everything(again), _everything(stored)))


def _everything(stored):
    return [part.numpy() for part in next(iter(stored.batch(10 ** 6)))]


def test_augmented_copies_are_different_views_drawn_one_per_epoch(tmp_path):
    data = tasks.load_task("digits", None, role="target", seed=0, validation_fraction=0.1,
                              test_fraction=0.2, examples_per_class=4)
    pixels = pipeline.make_dataset(data.train, num_classes=5, batch_size=8, image_size=32,
                                   channels=1)
    views = [pipeline.augmented(pixels, ("flip",), seed=copy) for copy in range(3)]
    trunk = feature_cache.trunk_of(classifier(seed=0))
    stored = feature_cache.record(trunk, views, str(tmp_path / "train"))
    features, labels = _everything(stored)
    assert features.shape == (20, 3, 512)
    np.testing.assert_array_equal(labels, _everything(feature_cache.record(
        trunk, [pixels], str(tmp_path / "plain")))[1])
    # Flips differ between copies: some images have different views.
    assert (np.abs(features[:, 0] - features[:, 1]).max(axis=1) > 1e-4).sum() >= 3
    # Each epoch each example comes as one of its recorded views, and across
    # epochs more than one of them.
    batches = feature_cache.feature_dataset(stored, batch_size=20, training=True, seed=0)
    seen = [{} for _ in range(20)]
    for _ in range(6):
        drawn, drawn_labels = next(iter(batches))
        for row, label in zip(drawn.numpy(), drawn_labels.numpy()):
            matches = [i for i in range(20) if np.array_equal(labels[i], label)
                       and any(np.array_equal(row, features[i, k]) for k in range(3))]
            assert matches, "a drawn row is none of the recorded views"
            for i in matches:
                seen[i][row.tobytes()] = True
    assert max(len(views) for views in seen) >= 2


@pytest.mark.long
def test_a_run_on_recorded_features_equals_one_without(tmp_path, console, random_vgg16_base):
    from conftest import TINY
    from keras_transfer import config as config_lib
    from keras_transfer.run import execute as run

    def phase_one(name, cache, **extra):
        config = config_lib.RunConfig(
            weights=random_vgg16_base, output_dir=str(tmp_path / name),
            cache_dir=str(tmp_path / "cache"),
            feature_cache=cache, **{**TINY, "epochs": 2, "fine_tune_epochs": 0,
                                    "examples_per_class": 6, "export": False,
                                    # 30 images, batch 16: two passes an epoch.
                                    "min_steps_per_epoch": 3, **extra})
        metrics = run.run(config)
        return metrics, console.readouterr().out

    uncached, _ = phase_one("off", "off")
    cached, printed = phase_one("auto", "auto")
    assert "recorded the base features" in printed and "in memory" in printed
    # Streamed from disk (what `auto` does when they do not fit): the same
    # features read back, the same shuffle while the split fits its buffer.
    streamed, printed = phase_one("disk", "disk")
    assert "reusing the base features recorded" in printed
    assert "streamed from disk" in printed
    history = lambda m: m["phases"]["feature_extraction"]["history"]  # noqa: E731
    assert len(history(uncached)["loss"]) == 2
    for key in ("loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(history(cached)[key], history(uncached)[key], atol=1e-5)
        np.testing.assert_allclose(history(streamed)[key], history(uncached)[key], atol=1e-5)
    assert cached["test"]["accuracy"] == uncached["test"]["accuracy"]
    assert streamed["test"]["accuracy"] == uncached["test"]["accuracy"]
    # The classifier's checkpoint is whole: fine-tuning can continue from it.
    checkpoint = tmp_path / "auto" / "checkpoints" / "feature_extraction.weights.h5"
    assert checkpoint.stat().st_size > 1e6
    # The head's own best stays beside it, small: a resumed run that finds
    # phase 1 finished restores its best epoch from there.
    head = tmp_path / "auto" / "checkpoints" / "feature_extraction.head.weights.h5"
    assert 0 < head.stat().st_size < checkpoint.stat().st_size / 10
    _, printed = phase_one("augmented", "auto", augment=("flip",), feature_cache_copies=2)
    assert "recorded the base features of 2 augmented view(s)" in printed
