"""Whole runs on the embedded digits: both phases, evaluation, plots, export,
output safety, fine-tune continuation, pretrain -> --weights=PATH, baseline."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from conftest import TINY, built_once
from test_evaluate import _event_tags, _event_values
from test_report import assert_real_png
from keras_transfer import config as config_lib
from keras_transfer import outputs, schema
from keras_transfer.cli import main as main_lib
from keras_transfer.run import execute as run_lib


def _config(tmp_path, cache_dir, name="run", **overrides):
    settings = {**TINY, "output_dir": str(tmp_path / name), "cache_dir": cache_dir,
                **overrides}
    return config_lib.RunConfig(**settings)


@pytest.fixture(scope="module")
def both_run(tmp_path_factory, cache_dir):
    """One `--phase=both` run through the CLI entry point, shared by tests
    (and by the test processes: `built_once`); they only read it."""
    def build(folder):
        with flagsaver.flagsaver(output_dir=str(folder / "run"), cache_dir=cache_dir,
                                 **TINY):
            main_lib.main(["keras_transfer"])

    return str(built_once(tmp_path_factory, "both_run", build) / "run")


def test_metrics_json_holds_exactly_the_schemas_keys(both_run):
    """keras_transfer/schema.py is the one place metrics.json's keys are
    spelled: a key the run writes and the schema lacks would be read by
    nothing, and one the schema has and the run never writes is a lie."""
    metrics = outputs.read_json(os.path.join(both_run, schema.METRICS_FILE))
    assert set(metrics) == {field.name for field in dataclasses.fields(schema.RunRecord)}
    assert metrics["baseline"] is None and metrics["comparison"] is None  # No --baseline.
    record = schema.RunRecord.from_dict(metrics)
    assert record.to_dict() == metrics
    assert record.exported_phase == metrics["safety_net"]["exported_phase"]


def test_both_phases_write_the_documented_outputs(both_run):
    metrics = outputs.read_json(os.path.join(both_run, "metrics.json"))
    assert list(metrics["phases"]) == ["feature_extraction", "fine_tune"]
    assert metrics["phases"]["fine_tune"]["first_epoch"] == 1
    assert metrics["weights"]["requested"] == "auto"
    assert metrics["weights"]["kind"] == "source"
    test = metrics["test"]
    for key in ("accuracy", "precision", "recall", "f1", "auc", "top_k",
                "per_class", "confusion_matrix", "class_names"):
        assert key in test
    assert test["class_names"] == ["5", "6", "7", "8", "9"]
    matrix = np.array(test["confusion_matrix"])
    assert matrix.shape == (5, 5) and matrix.sum() == test["examples"]
    assert np.isclose(np.trace(matrix) / matrix.sum(), test["accuracy"])
    assert {"feature_extraction", "fine_tune", "evaluate", "export", "total"} <= set(
        metrics["timings"])
    for name in ("history.csv", "history_fine_tune.csv", "run_config.json", "report.md",
                 "checkpoints/fine_tune.weights.h5"):
        assert os.path.getsize(os.path.join(both_run, name)) > 0, name
    assert set(metrics["plots"]) >= {"learning_curves", "confusion_matrix", "roc"}
    for name in metrics["plots"].values():
        assert_real_png(os.path.join(both_run, name))
    assert os.listdir(os.path.join(both_run, "tensorboard", "fine_tune", "train"))
    assert os.path.isfile(os.path.join(both_run, "export", "1", "assets", "labels.txt"))


def test_every_phase_has_test_numbers_before_and_after(both_run):
    metrics = outputs.read_json(os.path.join(both_run, "metrics.json"))
    phase_one, phase_two = metrics["phases"]["feature_extraction"], metrics["phases"]["fine_tune"]
    assert phase_two["test_before"] == phase_one["test"]
    assert set(phase_one["test_before"]) == set(phase_one["test"]) >= {"accuracy", "f1", "ece"}
    exported = metrics["safety_net"]["exported_phase"]
    assert metrics["phases"][exported]["test"]["accuracy"] == metrics["test"]["accuracy"]
    for phase in (phase_one, phase_two):
        assert phase["monitor"] == "val_loss"
        assert phase["best_value"] == min(phase["history"]["val_loss"])
        assert np.sum(phase["validation_confusion_matrix"]) == metrics["dataset"][
            "split_sizes"]["validation"]


def test_validation_metrics_reach_tensorboard(both_run):
    tags = _event_tags(os.path.join(both_run, "tensorboard", "fine_tune", "validation_classes"))
    assert {"confusion_matrix", "epoch_f1_macro", "f1_per_class/5", "recall_per_class/9"} <= tags


def _logged_learning_rates(folder):
    return [float(tf.make_ndarray(value.tensor)) for value in _event_values(folder)
            if value.tag == "epoch_learning_rate"]


def test_fine_tune_rate_decays_to_zero_and_phase_one_stays(both_run):
    """The default cosine schedule of phase 2, seen where users see it: the
    learning rate TensorBoard logs at the end of each epoch."""
    metrics = outputs.read_json(os.path.join(both_run, "metrics.json"))
    assert metrics["phases"]["fine_tune"]["schedule"] == "cosine"
    assert metrics["phases"]["feature_extraction"]["schedule"] == "constant"
    board = os.path.join(both_run, "tensorboard")
    assert _logged_learning_rates(os.path.join(board, "fine_tune", "train")) == [
        pytest.approx(0.0, abs=1e-9)]  # TINY: one fine-tune epoch, the whole curve.
    assert _logged_learning_rates(os.path.join(board, "feature_extraction", "train")) == [
        pytest.approx(metrics["config"]["learning_rate"])] * TINY["epochs"]


def test_report_md_answers_the_three_questions(both_run):
    metrics = outputs.read_json(os.path.join(both_run, "metrics.json"))
    with open(os.path.join(both_run, "report.md"), encoding="utf-8") as handle:
        text = handle.read()
    test = metrics["test"]
    assert f"Test accuracy **{test['accuracy']:.3f}** (macro F1 {test['f1']:.3f})" in text
    assert "**Did transfer help?** not measured (no --baseline)" in text
    assert f"Exported: **{metrics['safety_net']['exported_phase']}**" in text
    for name in test["class_names"]:
        assert f"\n| {name} | {test['per_class'][name]['support']} |" in text


def test_history_csv_continues_epochs_across_phases(both_run):
    with open(os.path.join(both_run, "history_fine_tune.csv")) as handle:
        rows = handle.read().splitlines()
    assert rows[0].startswith("epoch,") and rows[1].startswith("1,")
    with open(os.path.join(both_run, "history.csv")) as handle:
        rows = [line.split(",")[:2] for line in handle.read().splitlines()]
    assert rows == [["phase", "epoch"], ["feature_extraction", "1"], ["fine_tune", "2"]]


def test_reused_output_dir_is_refused_before_anything_is_written(both_run, cache_dir):
    before = sorted(os.listdir(both_run))
    with pytest.raises(config_lib.ConfigError, match="would be overwritten"):
        run_lib.run(config_lib.RunConfig(**{**TINY, "output_dir": both_run,
                                            "cache_dir": cache_dir}))
    assert sorted(os.listdir(both_run)) == before


def test_default_output_dir_is_new_for_every_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = config_lib.RunConfig()
    (first, _, one), (second, _, other) = (outputs.create_output_dir(config),
                                           outputs.create_output_dir(config))
    one.release(), other.release()
    assert first != second and os.path.isdir(first) and os.path.isdir(second)


def test_fine_tune_alone_continues_the_phase_one_result(tmp_path, cache_dir):
    config = _config(tmp_path, cache_dir, phase="feature_extraction")
    first = run_lib.run(config)
    assert list(first["phases"]) == ["feature_extraction"]
    # Fine-tuning alone cuts where phase 1 did (for a source base, auto cuts
    # a VGG16 lower when the run fine-tunes it).
    second = run_lib.run(_config(tmp_path, cache_dir, phase="fine_tune"))
    assert second["config"]["base_layer"] == first["config"]["base_layer"] == "block4"
    assert list(second["phases"]) == ["feature_extraction", "fine_tune"]
    assert second["phases"]["feature_extraction"] == first["phases"]["feature_extraction"]
    assert sorted(os.listdir(tmp_path / "run" / "export")) == ["1", "2"]
    # Another cut cannot continue phase 1's model: refused before any writing.
    with pytest.raises(outputs.OutputDirError, match="base_layer='block4'; this run has "
                       "base_layer='block3'"):
        run_lib.run(_config(tmp_path, cache_dir, phase="fine_tune", base_layer="block3"))
    assert sorted(os.listdir(tmp_path / "run" / "export")) == ["1", "2"]


def test_fine_tune_alone_without_a_phase_one_result_is_refused(tmp_path, cache_dir):
    with pytest.raises(config_lib.ConfigError, match="phase=fine_tune starts from"):
        run_lib.run(_config(tmp_path, cache_dir, phase="fine_tune"))
    assert not os.path.exists(tmp_path / "run")
    # An interrupted `both` run is resumed by its own command, which says so.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / schema.CONFIG_FILE).write_text('{"phase": "both"}')
    with pytest.raises(config_lib.ConfigError, match=r"holds an interrupted run \(phase=both\)"):
        run_lib.run(_config(tmp_path, cache_dir, phase="fine_tune"))


def test_pretrain_then_weights_path(tmp_path, cache_dir):
    pretrained = run_lib.run(_config(tmp_path, cache_dir, name="pre", phase="pretrain",
                                     classes=("0", "1", "2"), export=False))
    assert list(pretrained["phases"]) == ["pretrain"]
    weights_file = str(tmp_path / "pre" / "base.weights.h5")
    # The options a real run combines, on the same small budget.
    # Both phases under mixed precision (bfloat16 on a CPU) with the base frozen.
    metrics = run_lib.run(_config(tmp_path, cache_dir, weights=weights_file,
                                  phase="both", augment=("rotation", "zoom"),
                                  class_weight="balanced", label_smoothing=0.1, l2=1e-4,
                                  l2_sp=1e-3, mixed_precision=True))
    assert metrics["weights"]["kind"] == "file"
    assert metrics["weights"]["load"] == weights_file
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert all(value is not None for phase in metrics["phases"].values()
               for value in phase["history"]["loss"])  # No NaN in reduced precision.
    import keras
    assert keras.mixed_precision.global_policy().name == "float32"  # Restored.
    assert metrics["config"]["l2_sp"] == 1e-3


def test_source_base_is_cached_and_reused(tmp_path, cache_dir):
    from keras_transfer.models import weights
    from keras_transfer.training import distribute, source

    config = _config(tmp_path, cache_dir, phase="feature_extraction", base_layer="block3",
                     export=False)
    # Cached by an earlier run of these settings (in this test process, which
    # may be the first to need it); the base cut lower is a target-only
    # setting, so that cached source base serves.
    source.pretrain_base_if_needed(config, weights.resolve(config, 32), image_size=32,
                                   strategy=distribute.make_strategy("one_device"),
                                   global_batch=config.batch_size)
    metrics = run_lib.run(config)
    assert metrics["source_pretrain"] is None
    assert "reusing cached" in metrics["weights"]["detail"]
    # --noexport: no SavedModel, and the export command writes it later, from
    # the cut classifier's checkpoint.
    assert metrics["export"] is None and not os.path.exists(tmp_path / "run" / "export")
    from keras_transfer.serving import reexport
    path = reexport.reexport(str(tmp_path / "run"))
    assert path == str(tmp_path / "run" / "export" / "1")
    served = tf.saved_model.load(path).signatures["serving_pixels"]
    images = np.zeros((2, 8, 8, 1), np.float32)
    assert served(**{list(served.structured_input_signature[1])[0]: images})[
        "probabilities"].shape == (2, 5)


@pytest.mark.long
def test_baseline_repeated_over_seeds_reports_mean_and_spread(tmp_path, cache_dir,
                                                              random_vgg16_base):
    # Feature extraction only, to keep it to four short fits (the other runs
    # here cover fine-tuning).
    metrics = run_lib.run(_config(tmp_path, cache_dir, baseline=True, repeats=2,
                                  phase="feature_extraction", epochs=2, monitor="val_f1",
                                  weights=random_vgg16_base, export=False))
    baseline = metrics["baseline"]
    assert baseline["phases"]["scratch"]["epochs_run"] == 2  # The same budget.
    assert baseline["phases"]["scratch"]["monitor"] == "val_f1"
    repeated = metrics["repeats"]
    assert repeated["seeds"] == [0, 1]
    rows = repeated["per_seed"]
    assert rows[0]["exported"]["accuracy"] == metrics["test"]["accuracy"]
    accuracies = [row["feature_extraction"]["accuracy"] for row in rows]
    spread = repeated["aggregate"]["feature_extraction"]["accuracy"]
    assert np.isclose(spread["mean"], np.mean(accuracies))
    assert np.isclose(spread["std"], np.std(accuracies, ddof=1))
    gain = metrics["comparison"]["feature_extraction"]
    assert np.isclose(gain["gain"], np.mean(
        [row["feature_extraction"]["accuracy"] - row["scratch"]["accuracy"] for row in rows]))
    seed_one = tmp_path / "run" / "repeats" / "seed_1"
    assert (seed_one / "checkpoints" / "feature_extraction.weights.h5").is_file()
    assert (seed_one / "baseline" / "checkpoints" / "scratch.weights.h5").is_file()
    phase = metrics["phases"]["feature_extraction"]
    assert phase["monitor"] == "val_f1"
    assert phase["best_value"] == max(phase["history"]["val_f1"])
    with open(tmp_path / "run" / "report.md", encoding="utf-8") as handle:
        text = handle.read()
    assert "Test scores over 2 seed(s) (0, 1)" in text
    scratch = repeated["aggregate"]["scratch"]["accuracy"]
    assert f"| from scratch (same budget) | {scratch['mean']:.3f} ± {scratch['std']:.3f}" in text


def test_safety_net_catches_a_harmful_fine_tune(tmp_path, cache_dir, console):
    """A learning rate of 100 wrecks the fine-tuned weights: the exported
    model must be the feature-extraction one, and the run must say so."""
    metrics = run_lib.run(_config(tmp_path, cache_dir, fine_tune_learning_rate=100.0,
                                  export=False))
    decision = metrics["safety_net"]
    assert decision["fine_tune_worse"] and decision["restored_feature_extraction"]
    assert decision["exported_phase"] == decision["before_phase"] == "feature_extraction"
    phases = metrics["phases"]
    # The exported model is phase 1's: its test numbers, not phase 2's.
    assert metrics["test"]["accuracy"] == phases["feature_extraction"]["test"]["accuracy"]
    assert "safety net: fine-tuning ended worse on validation" in console.readouterr().out
    with open(tmp_path / "run" / "report.md", encoding="utf-8") as handle:
        text = handle.read()
    assert "Exported: **feature_extraction** (the fine-tuned weights were discarded)" in text
    assert "**Fine-tuning made it worse on validation**" in text


def test_a_diverged_run_says_so_on_the_console(tmp_path, cache_dir, console):
    metrics = run_lib.run(_config(tmp_path, cache_dir, phase="feature_extraction",
                                  learning_rate=1e37, export=False))
    assert metrics["test"]["non_finite_outputs"] == metrics["test"]["examples"]
    assert "warning: the model outputs NaN for" in console.readouterr().out


@pytest.mark.long
def test_weights_none_trains_the_whole_network_from_scratch(tmp_path, cache_dir, console):
    """Not a head on a frozen random base: every layer trains, from the
    first epoch, at the from-scratch rate, for both phases' epochs, with
    BatchNormalization learning its statistics; `--baseline` would repeat
    the run, so it is dropped with a warning."""
    finished = run_lib.run_to_model(_config(
        tmp_path, cache_dir, model="resnet50", weights="none", classes=("0", "1", "2"),
        epochs=1, fine_tune_epochs=1, baseline=True, export=False))
    metrics, classifier = finished.metrics, finished.classifier
    printed = console.readouterr().out
    assert "warning: --baseline adds nothing to --weights=none" in printed
    assert "no pretrained weights: the whole network trains from scratch, 2 epoch(s)" in printed
    assert list(metrics["phases"]) == ["scratch"] and metrics["baseline"] is None
    scratch = metrics["phases"]["scratch"]
    assert scratch["epochs_run"] == 2 and scratch["learning_rate"] == 1e-3  # ResNet's.
    assert metrics["config"]["image_size"] == 32 and metrics["config"]["base_layer"] == "top"
    # Trainable: all but BatchNormalization's moving statistics, which the
    # training steps updated from the data (they start at mean 0, variance 1).
    base = classifier.get_layer("resnet50")
    assert all(layer.trainable for layer in base.layers)
    assert {w.path.rsplit("/", 1)[-1] for w in classifier.non_trainable_weights} == {
        "moving_mean", "moving_variance"}
    assert np.abs(base.get_layer("conv1_bn").moving_mean.numpy()).max() > 0
    assert os.path.isfile(os.path.join(tmp_path, "run", "checkpoints", "scratch.weights.h5"))
    with open(os.path.join(tmp_path, "run", "report.md")) as handle:
        assert ("**Did transfer help?** no transfer here: the whole network trained from "
                "scratch (`--weights=none`)") in handle.read()


def test_metrics_json_is_valid_json(both_run):
    with open(os.path.join(both_run, "metrics.json")) as handle:
        text = handle.read()
    json.loads(text)
    assert "NaN" not in text


def test_zero_feature_extraction_epochs_goes_straight_to_fine_tuning(tmp_path, cache_dir):
    metrics = run_lib.run(_config(tmp_path, cache_dir, epochs=0, export=False))
    assert list(metrics["phases"]) == ["fine_tune"]
    assert metrics["phases"]["fine_tune"]["first_epoch"] == 0


