"""Plots are written and not blank; report.md answers its three questions;
repeats give mean, spread and an honest verdict on transfer versus scratch."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from keras_transfer import schema
from keras_transfer.evaluation import advice
from keras_transfer.evaluation import metrics as evaluate
from keras_transfer.evaluation import plots
from keras_transfer.run import repeats
from keras_transfer.evaluation import report
from keras_transfer.training import safety_net as safety
from keras_transfer.training import phase as train

NAMES = ["5", "6", "7"]


def assert_real_png(path, min_size=200):
    """Written, a sensible size, and not a single colour."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= min_size, image.size
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20


def _predictions():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 10)
    logits = rng.normal(size=(30, 3)) + 2.0 * np.eye(3)[labels]
    return labels, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _phase(name, first_epoch, val_losses, test_before, test_after):
    best = train.best_epoch_index(val_losses, "val_loss")
    history = {"loss": val_losses, "val_loss": val_losses,
               "accuracy": [0.5] * len(val_losses), "val_accuracy": [0.5] * len(val_losses)}
    return train.PhaseResult(
        name=name, history=history, epochs_run=len(val_losses),
        best_epoch=first_epoch + best + 1, best_val_loss=val_losses[best], seconds=1.0,
        first_epoch=first_epoch, learning_rate=1e-3, checkpoint="unused",
        best_value=val_losses[best], test_before=test_before, test=test_after)


def test_run_plots_are_readable_pngs(tmp_path):
    labels, probabilities = _predictions()
    result = evaluate.report(labels, probabilities, NAMES)
    images = np.random.default_rng(1).integers(0, 256, (30, 8, 8, 1), dtype=np.uint8)
    phases = [_phase("feature_extraction", 0, [1.0, 0.8], None, None),
              _phase("fine_tune", 2, [0.7, 0.6], None, None)]
    written = plots.write_run_plots(str(tmp_path), phases, result, labels, probabilities,
                                    images, "test")
    assert set(written) == {"learning_curves", "confusion_matrix", "roc", "misclassified"}
    for name in written.values():
        assert_real_png(tmp_path / name)


def test_misclassified_grid_shows_the_most_confident_mistakes_first(tmp_path):
    labels = np.array([0, 1, 2, 0])
    probabilities = np.array([[0.1, 0.9, 0.0], [0.0, 1.0, 0.0], [0.6, 0.4, 0.0],
                              [1.0, 0.0, 0.0]])
    images = np.zeros((4, 8, 8, 3), np.uint8)
    assert plots.misclassified(images, labels, probabilities, NAMES,
                               str(tmp_path / "m.png"), "t") == 2
    assert plots.misclassified(images, labels[[1, 3]], probabilities[[1, 3]], NAMES,
                               str(tmp_path / "none.png"), "t") == 0
    assert not (tmp_path / "none.png").exists()


def _metrics(phases, safety_net=None, rows=None):
    labels, probabilities = _predictions()
    test = evaluate.report(labels, probabilities, NAMES)
    rows = rows or [{"seed": 0, "feature_extraction": None, "fine_tune": None,
                     "exported": None, "scratch": None}]
    metrics = {
        "config": {"model": "vgg16", "phase": "both", "image_size": 32,
                   "monitor": "val_loss"},
        "weights": {"requested": "auto", "kind": "source", "detail": "digits 0-4"},
        "dataset": {"name": "digits", "split_sizes": {"train": 20}},
        "phases": {phase.name: phase.to_dict() for phase in phases},
        "test": test, "safety_net": safety_net,
        "repeats": {"seeds": [row["seed"] for row in rows], "per_seed": rows,
                    "aggregate": repeats.aggregate(rows)},
        "plots": {"misclassified": "misclassified.png"},
        "timings": {"total": 12.0},
    }
    if rows[0]["scratch"] is not None:
        metrics["comparison"] = repeats.transfer_vs_scratch(rows)
    return metrics


def _summary(accuracy):
    return {"accuracy": accuracy, "f1": accuracy - 0.01, "auc": 0.9}


def test_report_flags_a_harmful_phase_and_the_safety_net():
    phases = [_phase("feature_extraction", 0, [1.0, 0.5], _summary(0.33), _summary(0.8)),
              _phase("fine_tune", 2, [0.9], _summary(0.8), _summary(0.6))]
    decision = {"monitor": "val_loss", "feature_extraction": 0.5, "fine_tune": 0.9,
                "fine_tune_worse": True, "keep_best_phase": True,
                "restored_feature_extraction": True, "exported_phase": "feature_extraction"}
    text = report.render(_metrics(phases, decision))
    for heading in ("## At a glance", "## Is it good?", "## Where does it fail?",
                    "## Did each phase help?", "## Did transfer help?"):
        assert heading in text
    assert "**fine_tune made the test accuracy worse** (0.800 → 0.600)" in text
    assert "| feature_extraction | 2 (best: epoch 2) | 0.330 → 0.800 | +0.470 |" in text
    assert "Exported: **feature_extraction** (the fine-tuned weights were discarded)" in text
    assert "Not measured: this run has no from-scratch baseline" in text
    assert "misclassified.png" in text


def _row(seed, transfer, scratch):
    return {"seed": seed, "feature_extraction": _summary(transfer - 0.05),
            "fine_tune": _summary(transfer), "exported": _summary(transfer),
            "exported_phase": "fine_tune", "scratch": _summary(scratch)}


def test_repeats_give_spread_and_a_verdict_that_respects_noise():
    clear = [_row(0, 0.90, 0.80), _row(1, 0.92, 0.81), _row(2, 0.91, 0.79)]
    noisy = [_row(0, 0.90, 0.80), _row(1, 0.80, 0.90), _row(2, 0.86, 0.85)]
    aggregate = repeats.aggregate(clear)
    assert aggregate["fine_tune"]["accuracy"]["mean"] == pytest.approx(0.91)
    assert aggregate["fine_tune"]["accuracy"]["std"] == pytest.approx(0.01)
    assert (aggregate["scratch"]["accuracy"]["min"], aggregate["scratch"]["accuracy"]["max"]) == (
        0.79, 0.81)
    assert repeats.transfer_vs_scratch(clear)["fine_tune"]["verdict"] == "transfer is better"
    assert repeats.transfer_vs_scratch(noisy)["fine_tune"]["verdict"].startswith("no clear")
    worse = [_row(s, 0.7 + s / 100, 0.9) for s in range(3)]
    assert repeats.transfer_vs_scratch(worse)["exported"]["verdict"] == "scratch is better"
    single = repeats.transfer_vs_scratch(clear[:1])["fine_tune"]
    assert single["gain"] == pytest.approx(0.10) and single["verdict"].startswith("one seed")


def test_report_puts_transfer_and_scratch_side_by_side_with_spread():
    rows = [_row(0, 0.90, 0.80), _row(1, 0.92, 0.81), _row(2, 0.91, 0.79)]
    phases = [_phase("feature_extraction", 0, [0.5], _summary(0.3), _summary(0.86))]
    text = report.render(_metrics(phases, rows=rows))
    assert "Test scores over 3 seed(s) (0, 1, 2)" in text
    assert "| fine-tuning (after phase 2) | 0.910 ± 0.010 (0.900–0.920) |" in text
    assert "| from scratch (same budget) | 0.800 ± 0.010 (0.790–0.810) |" in text
    assert "+0.110 | transfer is better |" in text
    assert "**Did transfer help?** transfer helped (+0.110" in text


def test_safety_net_decision():
    first = _phase("feature_extraction", 0, [1.0, 0.5], None, None)
    better = _phase("fine_tune", 2, [0.4], None, None)
    worse = _phase("fine_tune", 2, [0.9], None, None)
    assert not safety.is_worse(safety.value_at_best(better, "val_loss"), 0.5, "val_loss")
    assert safety.is_worse(safety.value_at_best(worse, "val_loss"), 0.5, "val_loss")
    assert safety.is_worse(None, 0.5, "val_loss")  # Diverged.
    assert safety.is_worse(0.6, 0.8, "val_accuracy")
    assert safety.value_at_best(first, "val_accuracy") == 0.5  # From the history.


def test_report_says_when_validation_loss_and_test_accuracy_disagree():
    phases = [_phase("feature_extraction", 0, [3.2], _summary(0.11), _summary(0.22)),
              _phase("fine_tune", 1, [2.1], _summary(0.22), _summary(0.20))]
    decision = {"monitor": "val_loss", "feature_extraction": 3.2, "fine_tune": 2.1,
                "fine_tune_worse": False, "keep_best_phase": True,
                "restored_feature_extraction": False, "exported_phase": "fine_tune"}
    text = report.render(_metrics(phases, decision))
    assert "**fine_tune made the test accuracy worse** (0.220 → 0.200)" in text
    assert "loss and accuracy disagree here" in text
    assert "Exported: **fine_tune**." in text


def test_one_seed_answer_names_both_scores_and_the_higher():
    one = repeats.transfer_vs_scratch([_row(0, 0.905, 0.916)])["exported"]
    assert report._transfer_answer(one) == (
        "scratch scored higher on one seed (transfer 0.905, scratch 0.916: -0.011); "
        "rerun with --repeats=3 to tell that from seed noise")
    tie = repeats.transfer_vs_scratch([_row(0, 0.5, 0.5)])["exported"]
    assert report._transfer_answer(tie).startswith("transfer and scratch scored the same")


def test_when_scratch_wins_the_report_says_so_and_gives_a_ranking_command():
    from absl import flags

    from keras_transfer.cli import rank as rank_cli

    worse = [_row(seed, 0.70 + seed / 100, 0.90) for seed in range(3)]
    metrics = _metrics([_phase("feature_extraction", 0, [0.5], _summary(0.3), _summary(0.7))],
                       rows=worse)
    metrics["config"].update(dataset="digits", classes=["5", "6"], weights="auto")
    text = report.render(metrics)
    assert "**Transfer did not pay here.**" in text
    command = [line.strip() for line in text.splitlines()
               if line.strip().startswith("python -m keras_transfer.rank")]
    assert command == ["python -m keras_transfer.rank --dataset=digits --classes=5,6 "
                       "--weights=auto --models=vgg16,resnet50,mobilenet_v2 "
                       "--base_layers=top,block3,block4"]
    # Every flag of the command is one the ranking CLI defines.
    rank_cli.define_flags()
    for argument in command[0].split()[3:]:
        assert argument[2:].split("=")[0] in flags.FLAGS, argument
    better = [_row(seed, 0.90 + seed / 100, 0.70) for seed in range(3)]
    assert "did not pay" not in report.render(_metrics([], rows=better))


def _test_report(predicted, labels):
    probabilities = np.eye(3)[predicted] * 0.8 + 0.2 / 3
    return evaluate.report(np.asarray(labels), probabilities, NAMES)


def test_is_it_good_names_both_baselines_and_below_chance_reads_as_below_chance():
    # 25 test images, the largest class 9 of them (0.36); uniform guessing 1/3.
    labels = [0] * 9 + [1] * 8 + [2] * 8
    below = _test_report([2] * 9 + [1] * 6 + [0] * 10, labels)  # 6 of 25 right: 0.24.
    assert report._how_good(below) == (
        "no: test accuracy 0.240 is below chance (a uniform guess scores 0.333, always "
        "answering the largest class 0.360)")
    majority = _test_report([0] * 25, labels)  # 0.36: what the largest class scores.
    assert report._how_good(majority).startswith(
        "no: test accuracy 0.360 is no better than always answering the largest class")
    good = _test_report(labels, labels)
    assert report._how_good(good).startswith("test accuracy 1.000, macro F1 1.000")


def test_where_it_fails_says_once_and_names_the_class():
    labels = [0] * 5 + [1] * 5 + [2] * 5
    predicted = list(labels)
    predicted[0] = 1  # One image of class 5 taken for class 6.
    metrics = _metrics([])
    metrics["test"] = _test_report(predicted, labels)
    assert ("most often class 5 taken for class 6 (once: 20% of the test images of "
            "class 5)") in report.render(metrics)


def _kept(train_accuracy, val_accuracy, matrix, kind="source"):
    """A one-phase run whose best (second) epoch had these accuracies."""
    phase = dataclasses.replace(
        _phase("fine_tune", 0, [0.9, 0.8, 0.85], None, _summary(0.5)),
        history={"loss": [1.0] * 3, "val_loss": [0.9, 0.8, 0.85],
                 "accuracy": [0.3, train_accuracy - 0.1, train_accuracy],
                 "val_accuracy": [0.2, val_accuracy, val_accuracy - 0.1]},
        validation_confusion_matrix=matrix)
    metrics = _metrics([phase])
    metrics["weights"]["kind"] = kind
    metrics["config"]["base_layer"] = "block3"
    return metrics


def test_a_model_that_learned_its_training_images_is_flagged_with_what_to_try():
    """The phase's best validation accuracy 0.45 against its best training
    accuracy 0.96 (a gap of 0.2 or more) reads as overfitting, whichever
    epoch was kept."""
    metrics = _kept(0.96, 0.45, [[3, 1, 0], [1, 2, 1], [2, 0, 2]])
    problems = advice.fit_problems(schema.RunRecord.from_dict(metrics))
    assert problems == [
        "validation accuracy (at best 0.45) stays far below training accuracy (up to 0.96) "
        "in phase fine_tune: the model learned its training images rather than the classes; try "
        "augmentation (`--augment=flip,rotation,zoom`; `rotation,zoom` for characters, which "
        "a flip changes); more labelled images per class; a lower cut (`--base_layer`, now "
        "`block3`), whose features are less specific to the source task; "
        "`--weights=imagenet` where the ImageNet file is at hand"]
    assert f"- **Warning:** {problems[0]}." in report.render(metrics)
    # Just under the gap, and above the largest class: nothing to say.
    assert advice.fit_problems(schema.RunRecord.from_dict(
        _kept(0.8, 0.8, [[3, 1, 0], [1, 2, 1], [2, 0, 2]]))) == []


def test_validation_no_better_than_the_largest_class_is_flagged():
    # 6 of 10 validation images are class 0: 0.60 is what always answering it
    # scores (logged in float32, a hair above).
    matrix = [[6, 0, 0], [2, 0, 0], [2, 0, 0]]
    problems = advice.fit_problems(schema.RunRecord.from_dict(
        _kept(0.7, float(np.float32(0.6)), matrix, kind="none")))
    assert len(problems) == 1
    assert problems[0].startswith(
        "validation accuracy 0.60 is no better than always answering the largest class "
        "(0.60 of the validation images): the model has not learned the classes; try ")
    assert "a pretrained base: `--weights=imagenet`" in problems[0]
    assert "--base_layer" not in problems[0]  # No pretrained base to cut.
