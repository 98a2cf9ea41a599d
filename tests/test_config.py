"""Bad settings stop early with one line naming the flag and the value."""

import os
import re

import pytest

from conftest import run_python
from keras_transfer import config as config_lib


@pytest.mark.parametrize(
    "overrides, flag, value",
    [
        (dict(model="vgg17"), "model", "'vgg17'"),
        (dict(epochs=-1), "epochs", "-1"),
        (dict(fine_tune_epochs=-2), "fine_tune_epochs", "-2"),
        (dict(image_size=16), "image_size", "16"),
        (dict(dataset="/no/such/folder"), "dataset", "'/no/such/folder'"),
        (dict(weights="/no/such/file.h5"), "weights", "'/no/such/file.h5'"),
        (dict(learning_rate=0.0), "learning_rate", "0.0"),
        (dict(batch_size=0), "batch_size", "0"),
        (dict(dropout=1.5), "dropout", "1.5"),
        (dict(augment=("flip", "shear")), "augment", "'shear'"),
        (dict(classes=("5",)), "classes", "'5'"),
        (dict(phase="pretrain", weights="imagenet"), "weights", "'imagenet'"),
        (dict(monitor="val_top5"), "monitor", "'val_top5'"),
        (dict(fine_tune_schedule="linear"), "fine_tune_schedule", "'linear'"),
        (dict(repeats=0), "repeats", "0"),
        (dict(phase="fine_tune", repeats=2), "repeats", "2"),
        (dict(feature_cache="ram"), "feature_cache", "'ram'"),
        (dict(phase="pretrain", base_layer="block4"), "base_layer", "'block4'"),
        (dict(export=False, export_tflite=True), "export", "False"),
        (dict(feature_cache_copies=-1), "feature_cache_copies", "-1"),
        (dict(feature_cache_copies=2), "feature_cache_copies", "2"),
        (dict(augment=("flip",), feature_cache="off", feature_cache_copies=2),
         "feature_cache", "'off'"),
    ],
)
def test_invalid_setting_names_flag_and_value(overrides, flag, value):
    with pytest.raises(config_lib.ConfigError) as raised:
        config_lib.RunConfig(**overrides)
    message = str(raised.value)
    assert f"Received: {flag}={value}" in message or f"{flag}={value}" in message
    assert "\n" not in message


def test_defaults_are_the_documented_ones():
    config = config_lib.RunConfig()
    assert (config.model, config.phase, config.weights, config.dataset) == (
        "vgg16", "both", "auto", "digits")
    # Fine-tuning rate by where the weights came from: ImageNet 10x below the
    # head's; a source-task base continues at the backbone's from-scratch rate.
    assert config.learning_rate / config.fine_tune_rate_for("imagenet") >= 10
    assert config.fine_tune_rate_for("source") == 1e-4  # VGG16's own.
    resnet = config_lib.RunConfig(model="resnet50")
    assert resnet.fine_tune_rate_for("source") == 1e-3
    assert config_lib.RunConfig(model="resnet50", pretrain_learning_rate=5e-4
                                ).fine_tune_rate_for("source") == 5e-4
    assert config_lib.RunConfig(fine_tune_learning_rate=3e-5).fine_tune_rate_for("source") == 3e-5
    assert config.to_dict()["augment"] == []
    assert config.label_smoothing == 0.1


def test_config_is_frozen():
    config = config_lib.RunConfig()
    with pytest.raises(Exception):
        config.epochs = 3


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--epochs=-1"], "epochs must be >= 0. Received: epochs=-1"),
        (["--image_size=8"], "Received: image_size=8"),
        (["--dataset=/no/such/folder"], "Received: dataset='/no/such/folder'"),
        (["--classes=5,6,x"], "classes names a class the data lacks: 'x'"),
        (["--model=vgg17"], "flag --model=vgg17"),
    ],
)
def test_cli_rejects_bad_flags_before_training(args, expected, tmp_path):
    output_dir = tmp_path / "run"
    result = run_python(
        ["-m", "keras_transfer.main", f"--output_dir={output_dir}", *args], timeout=120
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if expected in line]
    assert lines, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(output_dir)


def test_scratch_learning_rate_is_the_backbones_unless_given():
    assert config_lib.RunConfig(model="vgg16").scratch_learning_rate == 1e-4
    assert config_lib.RunConfig(model="resnet50").scratch_learning_rate == 1e-3
    assert config_lib.RunConfig(model="resnet50",
                                pretrain_learning_rate=3e-4).scratch_learning_rate == 3e-4


@pytest.mark.parametrize("settings, says", [
    (dict(phase="feature_extraction", epochs=0), "phase=feature_extraction trains epochs"),
    (dict(phase="fine_tune", fine_tune_epochs=0), "phase=fine_tune trains fine_tune_epochs"),
    (dict(epochs=0, fine_tune_epochs=0), "phase=both trains epochs + fine_tune_epochs"),
])
def test_a_run_must_train_at_least_one_epoch(settings, says):
    with pytest.raises(config_lib.ConfigError, match=re.escape(says)):
        config_lib.RunConfig(**settings)
    config_lib.RunConfig(epochs=0)  # Both, straight to fine-tuning: fine.


@pytest.mark.parametrize("name", ["learning_rate", "fine_tune_learning_rate", "l2",
                                  "max_megapixels"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_infinite_or_nan_settings_are_refused(name, value):
    with pytest.raises(config_lib.ConfigError, match=f"{name} must be a finite number"):
        config_lib.RunConfig(**{name: value})


def test_pretraining_and_baseline_need_epochs():
    with pytest.raises(config_lib.ConfigError, match="Received: pretrain_epochs=0"):
        config_lib.RunConfig(pretrain_epochs=0)
    with pytest.raises(config_lib.ConfigError, match="Received: epochs=0, fine_tune_epochs=0"):
        config_lib.RunConfig(baseline=True, epochs=0, fine_tune_epochs=0)


def test_a_cache_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "afile.txt").write_text("")
    with pytest.raises(config_lib.ConfigError, match="cache_dir must be a folder"):
        config_lib.RunConfig(cache_dir=str(tmp_path / "afile.txt"))
    config_lib.RunConfig(cache_dir=str(tmp_path / "not-yet"))  # Created when needed.


def test_an_output_dir_that_cannot_be_created_is_one_clear_error(tmp_path):
    from keras_transfer import outputs

    (tmp_path / "afile").write_text("")
    config = config_lib.RunConfig(output_dir=str(tmp_path / "afile" / "run"))
    with pytest.raises(outputs.OutputDirError, match="output_dir cannot be created"):
        outputs.create_output_dir(config)


def test_an_image_size_beyond_memory_is_refused():
    with pytest.raises(config_lib.ConfigError, match="and <= 4096. Received: image_size=100000"):
        config_lib.RunConfig(image_size=100000)
    config_lib.RunConfig(image_size=4096)
