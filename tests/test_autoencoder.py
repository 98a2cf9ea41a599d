"""`--weights=autoencoder`: the decoder's shape for each backbone and cut,
the loss falling, the encoder (not the decoder) reaching the classifier, the
cache key, a run killed mid-pretraining that resumes, and a pool that never
holds the target's validation or test images."""

import dataclasses
import os

import numpy as np
import pytest

from conftest import TINY, run_main
from keras_transfer import config as config_lib, outputs
from keras_transfer.data import reconstruction, sources, tasks

SPLITS = dict(validation_fraction=0.1, test_fraction=0.2)


@pytest.mark.parametrize("model,base_layer,size", [
    ("vgg16", "top", 32), ("vgg16", "block3", 40), ("resnet50", "conv4", 32),
    ("mobilenet_v3_small", "top", 48)])
def test_the_decoder_draws_the_input_size_from_any_cut(model, base_layer, size):
    from keras_transfer.models import backbones, decoder

    autoencoder, base = decoder.build_autoencoder(backbones.get(model), size, base_layer)
    assert autoencoder.output_shape == (None, size, size, 3)
    output = autoencoder(np.zeros((2, size, size, 3), np.float32))
    assert float(np.min(output)) >= 0.0 and float(np.max(output)) <= 1.0
    # The encoder is the base's own layers: what trains in one is the other.
    encoder = base_of(autoencoder)
    assert {id(w) for w in encoder.weights} <= {id(w) for w in base.weights}


def base_of(model):
    from keras_transfer.models import classifier as model_lib

    return model_lib.base_of(model)


def _digits_pool(count=48):
    data = tasks.load_task("digits", None, role="target", seed=0, examples_per_class=4,
                           **SPLITS)
    images = data.rest.images[:count]
    return reconstruction.Pool(groups=(sources.Examples(labels=np.zeros(len(images), int),
                                                        images=images),), names=("digits",))


def test_the_loss_falls_and_the_encoder_alone_reaches_the_classifier(tmp_path):
    """Trained on a few dozen digits, the reconstruction loss falls; the base
    file holds the encoder's weights, the classifier built on it has them
    and no decoder layer."""
    from keras_transfer.models import classifier as model_lib
    from keras_transfer.training import autoencoder, distribute

    config = config_lib.RunConfig(**{**TINY, "pretrain_epochs": 4, "autoencoder": "plain",
                                     "min_steps_per_epoch": 3})
    base, model, result = autoencoder.train_autoencoder(
        _digits_pool(), config=config, strategy=distribute.make_strategy("one_device"),
        image_size=32, global_batch=16, base_layer="block2", output_dir=str(tmp_path))
    losses = result.history["val_loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    path = str(tmp_path / "base.weights.h5")
    outputs.save_weights_atomically(base, path)
    classifier = model_lib.build_classifier(config.backbone, 5, image_size=32, channels=1,
                                            base_weights=path, base_layer="block2")
    trained = {w.path: np.asarray(w) for w in base_of(model).weights}
    loaded = {w.path: np.asarray(w) for w in model_lib.base_of(classifier).weights}
    assert trained.keys() == loaded.keys() and trained
    for name, value in trained.items():
        np.testing.assert_array_equal(value, loaded[name], err_msg=name)
    assert not [layer.name for layer in classifier.layers if "decoder" in layer.name]
    assert any("decoder" in layer.name for layer in model.layers)


def test_every_objective_corrupts_as_it_says():
    pixels = np.full((32, 32, 3), 200.0, np.float32)
    key = np.array([0, 1], np.int64)
    shown, target = reconstruction.corrupt(pixels, key, objective="plain")
    np.testing.assert_allclose(target, pixels / 255.0)
    np.testing.assert_array_equal(shown, pixels)
    noisy, _ = reconstruction.corrupt(pixels, key, objective="denoising", noise_stddev=0.1)
    assert 10 < float(np.std(np.asarray(noisy))) < 40  # 0.1 of 255, clipped at 255.
    shown, _, mask = reconstruction.corrupt(pixels, key, objective="masked", mask_ratio=0.5)
    mask = np.asarray(mask)
    assert set(np.unique(mask)) <= {0.0, 1.0} and 0 < mask.mean() < 1
    np.testing.assert_array_equal(np.asarray(shown)[mask == 1], reconstruction.MASK_FILL)
    np.testing.assert_array_equal(np.asarray(shown)[mask == 0], 200.0)
    again = reconstruction.corrupt(pixels, key, objective="masked", mask_ratio=0.5)[2]
    np.testing.assert_array_equal(np.asarray(again), mask)  # The key decides.


def test_the_cache_key_changes_with_every_setting(tmp_path):
    from keras_transfer.models import weights

    base = config_lib.RunConfig(cache_dir=str(tmp_path), weights="autoencoder")
    path = weights.autoencoder_cache_file(base, 32, "block4")
    assert path == weights.autoencoder_cache_file(
        config_lib.RunConfig(cache_dir=str(tmp_path), weights="autoencoder", epochs=5),
        32, "block4")  # A setting of the transfer phases only.
    assert path != weights.autoencoder_cache_file(base, 40, "block4")
    assert path != weights.autoencoder_cache_file(base, 32, "block3")
    for change in (dict(autoencoder="plain"), dict(mask_ratio=0.7), dict(seed=1),
                   dict(pretrain_epochs=7), dict(pretrain_learning_rate=1e-3),
                   dict(batch_size=8), dict(examples_per_class=5),
                   dict(examples_per_class=5, unlabeled_data="rest"),
                   dict(source_classes=("0", "1")), dict(classes=("5", "6")),
                   dict(model="resnet50"), dict(min_steps_per_epoch=3)):
        changed = config_lib.RunConfig(**{"cache_dir": str(tmp_path),
                                          "weights": "autoencoder", **change})
        assert weights.autoencoder_cache_file(changed, 32, "block4") != path, change
    # With `rest` the pool is the whole training split, whatever the cap:
    # one base serves every cap, and the pool is the same, in the same order.
    rest = dict(cache_dir=str(tmp_path), weights="autoencoder", unlabeled_data="rest")
    assert (weights.autoencoder_cache_file(config_lib.RunConfig(**rest, examples_per_class=5),
                                           32, "block4")
            == weights.autoencoder_cache_file(
                config_lib.RunConfig(**rest, examples_per_class=20), 32, "block4"))
    pools = [reconstruction.pool_of(tasks.load_task(
        "digits", None, role="target", seed=0, examples_per_class=cap, **SPLITS), rest=True)
        for cap in (5, 20)]
    np.testing.assert_array_equal(pools[0].groups[0].images, pools[1].groups[0].images)
    noisy = dict(cache_dir=str(tmp_path), weights="autoencoder", autoencoder="denoising")
    assert (weights.autoencoder_cache_file(config_lib.RunConfig(**noisy), 32, "block4")
            != weights.autoencoder_cache_file(config_lib.RunConfig(**noisy, noise_stddev=0.3),
                                              32, "block4"))
    # A setting of another objective than the run's is no part of its key.
    assert path == weights.autoencoder_cache_file(
        config_lib.RunConfig(cache_dir=str(tmp_path), weights="autoencoder", noise_stddev=0.3),
        32, "block4")


def test_the_pool_never_holds_a_validation_or_test_image(tmp_path):
    from test_messy_folders import FRACTIONS, make_folder, policy

    from keras_transfer.data import unlabeled

    dataset = make_folder(tmp_path / "data", {"cats": 12, "dogs": 12})
    data = tasks.load_task(dataset, None, role="target", seed=0, examples_per_class=3,
                           folder_policy=policy(tmp_path), **FRACTIONS)
    extra = tmp_path / "extra"
    extra.mkdir()
    os.link(data.test.files[0], extra / "a_test_image.png")
    os.link(data.rest.files[0], extra / "a_rest_image.png")
    data = dataclasses.replace(data, unlabeled=unlabeled.load(
        str(extra), data, policy(tmp_path)).examples)
    source = tasks.load_task("digits", None, role="source", seed=0, **SPLITS)
    pool = reconstruction.pool_of(data, source, rest=True)
    files = {_identity(path) for group in pool.groups if group.files is not None
             for path in group.files}
    held_out = {_identity(path) for path in [*data.validation.files, *data.test.files]}
    assert files and not files & held_out
    assert files == {_identity(path) for path in [*data.train.files, *data.rest.files]}
    assert len(pool) == len(source.train) + len(source.validation) + len(source.test) + len(
        data.train) + len(data.rest) + 1  # The rest image's link, not the test image's.
    # Training and validation pipelines draw on all of it (mixed: files and arrays).
    training, validation = reconstruction.datasets(pool, image_size=32, batch_size=8,
                                                   objective="plain", seed=0)
    assert sum(int(x.shape[0]) for x, _ in training) + sum(
        int(x.shape[0]) for x, _ in validation) == len(pool)
    without_rest = reconstruction.pool_of(data, None)
    assert len(without_rest) == len(data.train) + 1  # And the unlabelled folder.


@pytest.mark.parametrize("examples_per_class", [5, 10])
def test_the_pca_probe_is_not_whitened_into_a_simplex(examples_per_class):
    """PCA keeps as many components as training images less one: standardised,
    they would place every training image equally far from every other, and
    the probe would learn nothing. On the pixels' own scale it does about as
    well as a logistic regression on the raw pixels."""
    from sklearn import linear_model, pipeline, preprocessing

    from keras_transfer.run import probe

    data = tasks.load_task("digits", None, role="target", seed=0,
                           examples_per_class=examples_per_class, **SPLITS)
    score = probe.pca_probe(data)
    assert score.features == len(data.train) - 1
    pixels = [split.images.reshape(len(split), -1) for split in (data.train, data.validation)]
    raw = pipeline.make_pipeline(preprocessing.StandardScaler(),
                                 linear_model.LogisticRegression(max_iter=2000))
    raw_accuracy = raw.fit(pixels[0], data.train.labels).score(pixels[1],
                                                              data.validation.labels)
    assert score.logistic_accuracy >= raw_accuracy - 0.05 and score.logistic_accuracy > 0.8


def _identity(path):
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def _run(output_dir, cache, kill_at=None):
    settings = {**TINY, "weights": "autoencoder", "base_layer": "block2", "fine_tune_epochs": 0,
                "pretrain_epochs": 2, "examples_per_class": 4, "autoencoder": "masked",
                "export": False, "verbose": 2,
                "cache_dir": cache, "output_dir": output_dir}
    return run_main(settings, kill_at)


def test_killed_mid_pretraining_the_same_command_resumes_and_reports(tmp_path):
    """Killed after the autoencoder's first epoch, the same command continues
    it from the cache entry's backup, transfers, and reports what the base
    learned: the losses, the reconstructions, the linear probes."""
    cache = str(tmp_path / "cache")
    killed = _run(str(tmp_path / "run"), cache, kill_at="autoencoder:1")
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-3000:]
    resumed = _run(str(tmp_path / "run"), cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "phase autoencoder resumed after epoch 1" in resumed.stdout, resumed.stdout
    metrics = outputs.read_json(str(tmp_path / "run" / "metrics.json"))
    assert metrics["weights"]["kind"] == "autoencoder"
    assert len(metrics["source_pretrain"]["history"]["val_loss"]) == 2
    assert [score["base"] for score in metrics["base_probe"]][:2] == [
        "autoencoder base", "random base"]
    assert metrics["plots"]["reconstructions"] == "reconstructions.png"
    assert os.path.isfile(tmp_path / "run" / "reconstructions.png")
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## What the base learned" in report and "Linear probe" in report
    assert "masked" in report


def test_pretraining_as_an_autoencoder_saves_the_base_for_weights_path(tmp_path):
    """`--phase=pretrain --pretrain_objective=autoencoder` on the dataset's
    own images (no source task) saves the encoder's base in the run's folder,
    byte for byte the cached one, measured by a head on it."""
    from keras_transfer.run import execute

    config = config_lib.RunConfig(**{
        **TINY, "phase": "pretrain", "pretrain_objective": "autoencoder",
        "classes": ("0", "1", "2"), "base_layer": "block2", "autoencoder": "plain",
        "cache_dir": str(tmp_path / "cache"), "export": False,
        "output_dir": str(tmp_path / "run")})
    metrics = execute.run(config)
    assert metrics["weights"]["kind"] == "autoencoder"
    assert "source task" not in metrics["weights"]["detail"]
    assert list(metrics["phases"]) == ["feature_extraction"]
    saved = tmp_path / "run" / "base.weights.h5"
    assert saved.read_bytes() == open(metrics["weights"]["load"], "rb").read()
    assert config_lib.RunConfig(weights=str(saved), base_layer="block2").weights == str(saved)


@pytest.mark.parametrize("settings,says", [
    (dict(phase="both", pretrain_objective="autoencoder"), "pretrain_objective chooses"),
    (dict(phase="distill", weights="autoencoder", teacher="."), "is a base for the transfer"),
    (dict(phase="pretrain", base_layer="block3"), "base_layer cuts the base for transfer"),
    (dict(weights="none", unlabeled_data="rest", examples_per_class=3),
     "what an autoencoder reconstructs"),
    (dict(weights="autoencoder", autoencoder="sparse"), "autoencoder must be one of"),
    (dict(weights="autoencoder", mask_ratio=1.0), "mask_ratio must be > 0.0 and <= 0.95"),
])
def test_autoencoder_settings_that_cannot_work_are_refused(settings, says):
    from keras_transfer.checks import ConfigError

    with pytest.raises(ConfigError, match=says):
        config_lib.RunConfig(**settings)
