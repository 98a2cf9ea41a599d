"""`--semi_supervised`: FixMatch's two-stream loss against a hand
computation (the mask at the threshold, the warm-up of its weight), the
pseudo-label accuracy on a case where it is known, a pool without validation
or test images, each method's threshold, a FixMatch run killed mid-phase and
a self-training run killed in its second round that resume, and the
refusals."""


import dataclasses
import types

import keras
import numpy as np
import pytest

from conftest import TINY, run_main
from keras_transfer import config as config_lib, outputs
from keras_transfer.checks import ConfigError

CLASSES = 3


def _model(threshold=0.9, weight=2.0, warmup_steps=0, known=True):
    from keras_transfer.training import fixmatch

    classifier = keras.Sequential([keras.Input((4,)), keras.layers.Dense(CLASSES,
                                                                         activation="softmax")])
    model = fixmatch.FixMatchModel(classifier, num_classes=CLASSES, threshold=threshold,
                                   weight=weight, warmup_steps=warmup_steps,
                                   labels_known=known)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.CategoricalCrossentropy())
    return model


def _ce(target, predicted):
    return -np.sum(target * np.log(predicted), axis=-1)


LABELS = np.eye(CLASSES, dtype=np.float32)[[0, 2]]
# Mean confidence on the labelled batch 0.8: the threshold is tau x 0.8.
LABELLED = np.array([[0.75, 0.2, 0.05], [0.05, 0.1, 0.85]], np.float32)
# Weak views, for tau 0.9 (threshold 0.72): confident at exactly the threshold,
# above it, below it (0.7 would pass an absolute threshold of 0.7).
WEAK = np.array([[0.72, 0.18, 0.1], [0.02, 0.96, 0.02], [0.7, 0.2, 0.1]], np.float32)
STRONG = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], np.float32)


def test_the_loss_is_the_labelled_loss_plus_the_weighted_confident_pseudo_label_loss():
    model = _model(threshold=0.9, weight=2.0)
    x = (np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32),
         np.zeros((3, 4), np.float32))
    pool = np.zeros((3, CLASSES + 1), np.float32)
    loss = float(model.compute_loss(x, (LABELS, pool), (LABELLED, WEAK, STRONG)))
    supervised = np.mean(_ce(LABELS, LABELLED))
    pseudo = np.eye(CLASSES)[[0, 1, 0]]
    mask = np.array([1.0, 1.0, 0.0])  # At the threshold counts; below it does not.
    assert float(np.mean(LABELLED.max(axis=1))) * 0.9 == pytest.approx(0.72)
    unlabelled = np.mean(mask * _ce(pseudo, STRONG))
    assert loss == pytest.approx(supervised + 2.0 * unlabelled, rel=1e-5)
    # Validation: one batch, the classifier's own loss.
    assert float(model.compute_loss(x[0], LABELS, LABELLED)) == pytest.approx(supervised,
                                                                            rel=1e-5)


def test_the_unlabelled_weight_rises_over_the_warm_up():
    model = _model(weight=2.0, warmup_steps=10)
    model.optimizer.build(model.classifier.trainable_variables)
    assert float(model.unlabelled_weight()) == 0.0
    model.optimizer.iterations.assign(4)
    assert float(model.unlabelled_weight()) == pytest.approx(0.8)
    model.optimizer.iterations.assign(25)
    assert float(model.unlabelled_weight()) == pytest.approx(2.0)


def test_mask_rate_and_pseudo_label_accuracy_count_what_they_say():
    model = _model(threshold=0.9)
    x = (np.zeros((2, 4), np.float32),) * 3
    # The pool's hidden labels: the first confident pseudo-label right (0), the
    # second wrong (true 2, pseudo 1); the third not confident, not counted.
    pool = np.concatenate([np.eye(CLASSES)[[0, 2, 1]], np.ones((3, 1))], axis=1)
    logs = model.compute_metrics(x, (LABELS, pool.astype(np.float32)),
                                 (LABELLED, WEAK, STRONG))
    assert float(logs["mask_rate"]) == pytest.approx(2 / 3)
    assert float(logs["pseudo_label_accuracy"]) == pytest.approx(0.5)
    unknown = _model(threshold=0.9, known=False)
    assert "pseudo_label_accuracy" not in unknown.compute_metrics(
        x, (LABELS, np.zeros((3, CLASSES + 1), np.float32)), (LABELLED, WEAK, STRONG))


def test_the_two_streams_step_together_for_the_labelled_length():
    from keras_transfer.data import tasks, two_streams, pipeline

    data = tasks.load_task("digits", None, role="target", seed=0, examples_per_class=4,
                           validation_fraction=0.1, test_fraction=0.2)
    config = config_lib.RunConfig(**{**TINY, "min_steps_per_epoch": 3})
    labelled, _ = pipeline.training_datasets(data, config, 32, 8)
    unlabelled = two_streams.unlabelled_batches(
        data.rest, num_classes=5, known=True, image_size=32, batch_size=24, seed=0,
        augment=())
    joined = two_streams.two_streams(labelled, unlabelled)
    assert int(joined.cardinality()) == int(labelled.cardinality()) == 3
    (images, weak, strong), (labels, pool) = next(iter(joined))
    assert weak.shape == strong.shape == (24, 32, 32, 3) and labels.shape[1] == 5
    assert pool.shape == (24, 6) and float(np.min(pool[:, 5])) == 1.0
    assert not np.allclose(weak, strong)


def test_the_pool_holds_no_validation_or_test_image(tmp_path):
    from test_messy_folders import FRACTIONS, make_folder, policy

    from keras_transfer.data import tasks
    from keras_transfer.training import semi_supervised

    dataset = make_folder(tmp_path / "data", {"cats": 12, "dogs": 12})
    data = tasks.load_task(dataset, None, role="target", seed=0, examples_per_class=3,
                           folder_policy=policy(tmp_path), **FRACTIONS)
    config = config_lib.RunConfig(dataset=dataset, semi_supervised="fixmatch",
                                  unlabeled_data="rest", examples_per_class=3)
    pool, known = semi_supervised.pool_of(data, config)
    held_out = set(data.validation.files) | set(data.test.files) | set(data.train.files)
    assert known and len(pool) and not set(pool.files) & held_out


@pytest.mark.parametrize("settings,says", [
    (dict(semi_supervised="fixmatch"), "pass --unlabeled_data=rest"),
    (dict(semi_supervised="fixmatch", unlabeled_data="rest", examples_per_class=3,
          phase="feature_extraction"), "trains in fine-tuning"),
    (dict(semi_supervised="fixmatch", unlabeled_data="rest", examples_per_class=3,
          class_weight="balanced"), "class_weight weighs images"),
    (dict(semi_supervised="fixmatch", unlabeled_data="rest", examples_per_class=3,
          confidence_threshold=1.5), "confidence_threshold must be"),
    (dict(semi_supervised="fixmatch", unlabeled_data="rest", examples_per_class=3,
          unlabeled_ratio=0), "unlabeled_ratio must be >= 1"),
    (dict(semi_supervised="mixmatch"), "semi_supervised must be one of"),
    (dict(semi_supervised="self_training", unlabeled_data="rest", examples_per_class=3,
          weights="none"), "use --semi_supervised=fixmatch there"),
    (dict(semi_supervised="self_training", unlabeled_data="rest", examples_per_class=3,
          self_training_rounds=0), "self_training_rounds must be >= 1"),
    (dict(semi_supervised="fixmatch", unlabeled_data="rest", examples_per_class=3,
          semi_supervised_epochs=0), "semi_supervised_epochs must be >= 1"),
])
def test_semi_supervised_settings_that_cannot_work_are_refused(settings, says):
    with pytest.raises(ConfigError, match=says):
        config_lib.RunConfig(**settings)


@pytest.mark.parametrize("method,given,used", [("fixmatch", None, 0.95),
                                               ("self_training", None, 0.8),
                                               ("self_training", 0.95, 0.95),
                                               ("fixmatch", 0.7, 0.7)])
def test_each_method_has_its_own_threshold_unless_one_is_given(method, given, used):
    """The run and its report both use the method's own default, or the
    threshold given."""
    from keras_transfer.evaluation import semi_report

    config = config_lib.RunConfig(semi_supervised=method, unlabeled_data="rest",
                                  examples_per_class=3, confidence_threshold=given)
    assert config.resolved_confidence_threshold == used
    run = types.SimpleNamespace(config=dataclasses.asdict(config), phases={}, safety_net=None)
    assert f"pseudo-labels at confidence >= {used:g} x" in "\n".join(semi_report.section(run))


def _run(output_dir, cache, kill_at=None):
    settings = {**TINY, "semi_supervised": "fixmatch", "unlabeled_data": "rest",
                "unlabeled_ratio": 2, "confidence_threshold": 0.5, "weights": "none",
                "epochs": 1, "fine_tune_epochs": 1, "min_steps_per_epoch": 2,
                "export": False, "verbose": 2, "cache_dir": cache, "output_dir": output_dir}
    return run_main(settings, kill_at)


@pytest.mark.long
def test_killed_mid_phase_the_same_command_resumes_and_records_the_pool(tmp_path):
    """From scratch with FixMatch, killed after the first of two epochs: the
    same command resumes the phase; the history has the mask rate and the
    pseudo-labels' accuracy per epoch (training only)."""
    cache = str(tmp_path / "cache")
    killed = _run(str(tmp_path / "run"), cache, kill_at="scratch:1")
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-3000:]
    resumed = _run(str(tmp_path / "run"), cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "phase scratch resumed after epoch 1" in resumed.stdout, resumed.stdout
    assert "fixmatch: " in resumed.stdout
    history = outputs.read_json(str(tmp_path / "run" / "metrics.json"))["phases"][
        "scratch"]["history"]
    assert len(history["mask_rate"]) == len(history["pseudo_label_accuracy"]) == 2
    assert all(0.0 <= value <= 1.0 for value in history["mask_rate"])
    assert "val_mask_rate" not in history and "val_pseudo_label_accuracy" not in history


@pytest.mark.long
def test_self_training_killed_in_its_second_round_resumes_that_round(tmp_path,
                                                                    random_vgg16_base):
    """Self-training end to end, two rounds after fine-tuning, killed in the
    second: the same command labels the pool as the killed round had (from
    the model the first round left), resumes the round (after its learning
    rate's warm-up epoch, the default), and each round records the share of
    the pool it labelled and how right it was. Each round trains its own
    `--semi_supervised_epochs`, two, after one epoch of fine-tuning."""
    settings = {**TINY, "weights": random_vgg16_base, "semi_supervised": "self_training",
                "unlabeled_data": "rest", "self_training_rounds": 2, "fine_tune_epochs": 1,
                "semi_supervised_epochs": 2,
                "export": False, "verbose": 2, "cache_dir": str(tmp_path / "cache"),
                "output_dir": str(tmp_path / "run")}
    killed = run_main(settings, kill_at="semi_supervised_2:1")
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-3000:]
    resumed = run_main(settings)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "phase semi_supervised_2 resumed after epoch 1" in resumed.stdout, resumed.stdout
    assert any("phase 3 (self-training, round 2): 2 epoch(s) at learning rate " in line
               and "(1 warm-up epoch(s) from 0, cosine decay to 0)" in line
               for line in resumed.stdout.splitlines())

    def round_two(said):
        return [line for line in said.splitlines() if "] self-training round 2: " in line]

    assert len(round_two(killed.stdout)) == 1
    assert round_two(resumed.stdout) == round_two(killed.stdout)
    metrics = outputs.read_json(str(tmp_path / "run" / "metrics.json"))
    assert list(metrics["phases"]) == ["feature_extraction", "fine_tune", "semi_supervised_1",
                                       "semi_supervised_2"]
    for name in ("semi_supervised_1", "semi_supervised_2"):
        history = metrics["phases"][name]["history"]
        assert len(history["mask_rate"]) == len(history["pseudo_label_accuracy"]) == 2
        assert 0.0 <= history["pseudo_label_accuracy"][0] <= 1.0
    assert metrics["safety_net"]["semi_supervised"]["semi_supervised_phase"].startswith(
        "semi_supervised_")


def _phase(name, val_loss, checkpoint, first_epoch):
    from keras_transfer.training import phase as phase_lib

    return phase_lib.PhaseResult(
        name=name, history={"val_loss": [val_loss]}, epochs_run=1, best_epoch=first_epoch + 1,
        best_val_loss=val_loss, seconds=0.0, first_epoch=first_epoch, learning_rate=1e-3,
        checkpoint=checkpoint, best_value=val_loss)


@pytest.mark.parametrize("semi_loss,exported", [(0.4, "semi_supervised"),
                                                 (0.6, "fine_tune")])
def test_the_safety_net_keeps_the_semi_supervised_model_only_when_better(
        tmp_path, semi_loss, exported):
    from keras_transfer.training import safety_net

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    paths = {}
    for index, name in enumerate(("feature_extraction", "fine_tune", "semi_supervised")):
        model.layers[0].kernel.assign(np.full((2, 1), float(index), np.float32))
        paths[name] = str(tmp_path / f"{name}.weights.h5")
        model.save_weights(paths[name])
    phases = [_phase("feature_extraction", 0.9, paths["feature_extraction"], 0),
              _phase("fine_tune", 0.5, paths["fine_tune"], 1),
              _phase("semi_supervised", semi_loss, paths["semi_supervised"], 2)]
    decision = safety_net.keep_best(model, phases, config_lib.RunConfig())
    assert decision["exported_phase"] == exported
    assert decision["semi_supervised"]["worse"] == (exported == "fine_tune")
    expected = {"fine_tune": 1.0, "semi_supervised": 2.0}[exported]
    np.testing.assert_array_equal(np.asarray(model.layers[0].kernel), expected)


@pytest.mark.parametrize("epochs,trained", [(None, 3), (5, 5)])
def test_phase_3_trains_its_own_epochs_else_fine_tunings(epochs, trained):
    """`--semi_supervised_epochs`, else `--fine_tune_epochs`; counting on
    from the phase before it, on fine-tuning's learning-rate curve."""
    from keras_transfer.training import transfer

    config = config_lib.RunConfig(semi_supervised="fixmatch", unlabeled_data="rest",
                                  examples_per_class=3, fine_tune_epochs=3,
                                  semi_supervised_epochs=epochs)
    budget = transfer._semi_supervised_budget(config, _phase("fine_tune", 0.5, "", 2))
    assert (budget["epochs"], budget["first_epoch"]) == (trained, 3)
    assert budget["schedule"] == config.fine_tune_schedule
    assert budget["warmup_epochs"] == config.semi_supervised_warmup_epochs


def test_self_training_pseudo_labels_the_confident_pool_images_and_counts_the_right_ones():
    """A model whose confidence in class 0 grows with the ink in the image:
    the pool images kept are those at tau times its mean confidence on the
    labelled images or above, labelled with its answer, and the accuracy is
    counted against the labels hidden from training."""
    from keras_transfer.data import tasks
    from keras_transfer.training import self_training

    data = tasks.load_task("digits", None, role="target", seed=0, examples_per_class=4,
                           validation_fraction=0.1, test_fraction=0.2)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(5, activation="softmax")])
    kernel = np.zeros((64, 5), np.float32)
    kernel[:, 0] = 1.0 / 2000  # Class 0's logit: the image's ink.
    model.layers[-1].set_weights([kernel, np.zeros(5, np.float32)])
    ctx = types.SimpleNamespace(global_batch=64, image_size=8)
    config = config_lib.RunConfig(semi_supervised="self_training", unlabeled_data="rest",
                                  examples_per_class=4, confidence_threshold=0.9, verbose=0)

    def confidence(examples):
        return np.asarray(model(examples.images.astype(np.float32))).max(axis=1)

    threshold = 0.9 * confidence(data.train).mean()
    expected = np.flatnonzero(confidence(data.rest) >= threshold)
    assert 0 < len(expected) < len(data.rest)  # The case decides something.
    labels = self_training.pseudo_label(model, data, config, ctx, 1)
    assert len(labels.examples) == len(expected)
    np.testing.assert_array_equal(labels.examples.images, data.rest.images[expected])
    assert set(labels.examples.labels) == {0} and labels.share == len(expected) / len(data.rest)
    assert labels.accuracy == pytest.approx(np.mean(data.rest.labels[expected] == 0))
    grown = self_training.with_pseudo_labels(data, labels)
    assert len(grown.train) == len(data.train) + len(expected)
