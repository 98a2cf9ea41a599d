"""`--phase=multitask`: the joint step's loss, the uncertainty weights, the
sampling of tasks of uneven sizes, and a whole run killed mid-phase,
resumed, and exported with every head served in a fresh process."""

import os

import numpy as np
import pytest

from conftest import TINY, built_once, run_main, run_python
from keras_transfer import outputs
from keras_transfer.checks import ConfigError
from keras_transfer.config import RunConfig


def _two_heads(classes=(3, 2)):
    """Two tiny classifiers sharing one Dense 'base'."""
    import keras

    shared = keras.layers.Dense(4, activation="relu", name="shared")
    heads = []
    for number, count in enumerate(classes):
        inputs = keras.Input((5,))
        outputs_ = keras.layers.Dense(count, activation="softmax",
                                      name=f"head{number}")(shared(inputs))
        heads.append(keras.Model(inputs, outputs_, name=f"task{number}"))
    return heads


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(4, 5)).astype("float32"))
    y = (np.eye(3, dtype="float32")[rng.integers(0, 3, 6)],
         np.eye(2, dtype="float32")[rng.integers(0, 2, 4)])
    return x, y


def _cross_entropy(labels, probabilities, smoothing):
    labels = labels * (1 - smoothing) + smoothing / labels.shape[1]
    return float(np.mean(-np.sum(labels * np.log(probabilities), axis=1)))


def test_the_joint_loss_is_the_weighted_sum_of_every_tasks_cross_entropy():
    import keras

    from keras_transfer.training import multitask_model

    heads = _two_heads()
    model = multitask_model.MultiTaskModel(heads, ["target", "source"], weights=[1.0, 0.25],
                                           label_smoothing=0.1)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(
        label_smoothing=0.1))
    x, y = _batch()
    predicted = model(x)
    by_hand = sum(weight * _cross_entropy(labels, np.asarray(p), 0.1)
                  for weight, labels, p in zip((1.0, 0.25), y, predicted))
    loss = float(model.compute_loss(x, y, predicted))
    assert loss == pytest.approx(by_hand, rel=1e-5)
    # One batch alone (validation, test): the target's classifier and loss.
    np.testing.assert_allclose(np.asarray(model(x[0])), np.asarray(heads[0](x[0])))
    model.compute_metrics(x, y, predicted)
    logs = {name: float(value) for name, value in model.get_metrics_result().items()}
    assert logs["source_weight"] == pytest.approx(0.25)
    assert logs["target_loss"] == pytest.approx(_cross_entropy(y[0], np.asarray(predicted[0]),
                                                               0.1), rel=1e-5)
    assert set(model.TRAINING_ONLY_METRICS) == {
        f"{task}_{what}" for task in ("target", "source")
        for what in ("loss", "accuracy", "weight")}


def test_uncertainty_weights_follow_kendall_et_al():
    """d/ds_i of exp(-s_i) * CE_i + s_i / 2 is -exp(-s_i) * CE_i + 1/2: a task
    whose loss is above 1/2 raises its log-variance, weighting itself down."""
    import keras
    import tensorflow as tf

    from keras_transfer.training import multitask_model

    model = multitask_model.MultiTaskModel(_two_heads(), ["target", "source"],
                                           uncertainty=True)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy())
    x, y = _batch(1)
    model.log_variances.assign([0.0, np.log(2.0)])
    with tf.GradientTape() as tape:
        predicted = model(x)
        loss = model.compute_loss(x, y, predicted)
    gradient = tape.gradient(loss, model.log_variances).numpy()
    losses = [_cross_entropy(labels, np.asarray(p), 0.0) for labels, p in zip(y, predicted)]
    np.testing.assert_allclose(gradient, [-losses[0] + 0.5, -losses[1] / 2 + 0.5], rtol=1e-5)
    assert float(loss) == pytest.approx(losses[0] + losses[1] / 2 + np.log(2.0) / 2, rel=1e-5)
    assert model.log_variances in model.trainable_weights


def _tasks(examples_per_class, source_examples):
    from keras_transfer.data import task_streams

    config = RunConfig(phase="multitask", examples_per_class=examples_per_class,
                       source_examples_per_class=source_examples, image_size=32)
    from keras_transfer.data import tasks

    target = tasks.load_for(config, "target", None, "digits", examples_per_class)
    return task_streams.load_tasks(config, target)


def test_tasks_of_uneven_sizes_step_together_for_the_longest_ones_epoch():
    import dataclasses

    from keras_transfer.data import task_streams

    task_list = _tasks(4, 20)  # 20 target images, 100 source images.
    assert [task.name for task in task_list] == ["target", "source"]
    assert task_streams.batch_sizes([20, 100], "joint", 16) == (16, 16)
    # Proportional: the step's 32 images shared 1:5, at least one a replica.
    assert task_streams.batch_sizes([20, 100], "proportional", 16) == (5, 27)
    assert task_streams.batch_sizes([1, 1000], "proportional", 16, replicas=2) == (2, 32)
    config = RunConfig(phase="multitask", min_steps_per_epoch=1, batch_size=16)
    stream, steps, sizes = task_streams.training_stream(task_list, config, 32, 16)
    assert steps == 7 and sizes == (16, 16)  # ceil(100 / 16): the source's epoch.
    counts = [0, 0]
    for images, labels in stream:
        assert len(images) == len(labels) == 2 and images[0].shape[1:] == (8, 8, 1)
        counts = [count + int(batch.shape[0]) for count, batch in zip(counts, labels)]
    # The source once; the target (20 images, 2 batches a pass) repeated.
    assert counts[1] == 100 and counts[0] == 16 + 4 + 16 + 4 + 16 + 4 + 16
    proportional = dataclasses.replace(config, task_sampling="proportional")
    _, steps, sizes = task_streams.training_stream(task_list, proportional, 32, 16)
    assert sizes == (5, 27) and steps == 4


@pytest.mark.parametrize("settings, says", [
    (dict(tasks=("fashion_mnist",)), "apply to phase=multitask"),
    (dict(phase="multitask", task_weights=(1.0,)), "one weight per task"),
    (dict(phase="multitask", weights="source"), "sequential transfer"),
    (dict(phase="multitask", export_heads="all"), "--fine_tune_tasks=all"),
    (dict(phase="multitask", fine_tune_tasks="some"), "fine_tune_tasks must be one of"),
    (dict(fine_tune_tasks="all"), "apply to phase=multitask"),
    (dict(phase="multitask", task_weights=(1.0, 2.0), task_weighting="uncertainty"),
     "learns them"),
    (dict(phase="multitask", tasks=("digits@3",)), "two classes or more"),
])
def test_multitask_settings_that_cannot_work_are_refused(settings, says):
    with pytest.raises(ConfigError, match=says):
        RunConfig(**settings)


def test_a_task_that_shares_the_targets_classes_is_refused_before_anything_is_written(
        tmp_path):
    from keras_transfer.run import execute

    config = RunConfig(phase="multitask", source_classes=("4", "5", "6"),
                       output_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"shares its classes \['5', '6'\]"):
        execute.run(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("fine_tune_tasks", ["target", "all"])
def test_the_safety_net_restores_every_head_of_the_joint_phase(tmp_path, fine_tune_tasks):
    """Fine-tuning that ended worse: the joint phase's weights come back to
    the shared base and the target's head, and with `--fine_tune_tasks=all`
    (where the other heads trained on) to every head."""
    from keras_transfer.training import multitask, multitask_model, phase as phase_lib

    heads = _two_heads()
    joint_model = multitask_model.MultiTaskModel(heads, ["target", "source"])
    joint_model(_batch()[0])
    checkpoints = {}
    for value, name in ((0.0, multitask.JOINT), (1.0, "fine_tune")):
        for variable in joint_model.weights:
            variable.assign(np.full(variable.shape, value, np.float32))
        checkpoints[name] = phase_lib.checkpoint_path(str(tmp_path), name)
        os.makedirs(os.path.dirname(checkpoints[name]), exist_ok=True)
        heads[0].save_weights(checkpoints[name])
        joint_model.save_weights(phase_lib.checkpoint_path(str(tmp_path), name, joint_model))
    phases = [phase_lib.PhaseResult(
        name=name, history={"val_loss": [loss]}, epochs_run=1, best_epoch=index + 1,
        best_val_loss=loss, seconds=0.0, first_epoch=index, learning_rate=1e-3,
        checkpoint=checkpoints[name], best_value=loss)
        for index, (name, loss) in enumerate(((multitask.JOINT, 0.5), ("fine_tune", 0.9)))]
    config = RunConfig(phase="multitask", fine_tune_tasks=fine_tune_tasks)
    decision = multitask._keep_best(heads[0], joint_model, phases, config, str(tmp_path))
    assert decision["exported_phase"] == multitask.JOINT
    assert all(np.all(np.asarray(v) == 0.0) for v in heads[0].weights)
    other_head = heads[1].get_layer("head1").kernel
    assert np.all(np.asarray(other_head) == (0.0 if fine_tune_tasks == "all" else 1.0))


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """A joint phase of two epochs with learned weights, killed after the
    first, resumed by the same command, then every task fine-tuned together
    for an epoch, every head exported."""
    def build(folder):
        settings = {**TINY, "phase": "multitask", "pretrain_epochs": 2, "fine_tune_epochs": 1,
                    "fine_tune_tasks": "all",
                    "task_weighting": "uncertainty", "export_heads": "all",
                    "tasks": "digits@0,1", "output_dir": str(folder / "run"),
                    "cache_dir": str(folder / "cache"), "verbose": 2}
        killed = run_main(settings, kill_at="multitask:1")
        assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-3000:]
        resumed = run_main(settings)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        (folder / "stdout").write_text(resumed.stdout)

    return built_once(tmp_path_factory, "multitask_run", build)


def test_killed_mid_phase_the_same_command_resumes_and_records_every_task(killed_and_resumed):
    said = (killed_and_resumed / "stdout").read_text()
    assert "phase multitask resumed after epoch 1" in said, said
    metrics = outputs.read_json(str(killed_and_resumed / "run" / "metrics.json"))
    assert list(metrics["phases"]) == ["multitask", "fine_tune"]
    history = metrics["phases"]["multitask"]["history"]
    # Fine-tuned together: every task's loss in that phase too.
    assert all(len(metrics["phases"]["fine_tune"]["history"][f"{name}_loss"]) == 1
               for name in ("target", "source", "task3"))
    tasks = {task["name"]: task for task in metrics["tasks"]}
    assert list(tasks) == ["target", "source", "task3"]
    assert (tasks["task3"]["dataset"], tasks["task3"]["class_names"]) == ("digits", ["0", "1"])
    for name, task in tasks.items():
        assert len(history[f"{name}_loss"]) == 2 and task["history"][f"{name}_loss"] == history[
            f"{name}_loss"]
        assert f"val_{name}_loss" not in history  # Measured on training batches only.
        # Learned weights: moved from 1 by the second epoch.
        assert history[f"{name}_weight"][0] != 1.0
        assert 0.0 <= task["test"]["accuracy"] <= 1.0 and task["validation"]["accuracy"] >= 0
    # The target's joint-phase scores are that phase's; the run's are the kept phase's.
    joint_test = metrics["phases"]["multitask"]["test"]
    assert tasks["target"]["test"] == {key: joint_test[key] for key in tasks["target"]["test"]}
    kept = metrics["phases"][metrics["safety_net"]["exported_phase"]]["test"]
    assert {key: metrics["test"][key] for key in kept} == kept


def test_every_head_is_served_from_one_saved_model_in_a_fresh_process(killed_and_resumed):
    export = str(killed_and_resumed / "run" / "export" / "1")
    assert sorted(name for name in os.listdir(os.path.join(export, "assets"))
                  if name.startswith("labels")) == [
        "labels.txt", "labels_source.txt", "labels_task3.txt"]
    served = run_python(f"""
import io, json, numpy as np, tensorflow as tf
from PIL import Image
loaded = tf.saved_model.load({export!r})
png = io.BytesIO(); Image.fromarray(np.zeros((28, 28), np.uint8)).save(png, "PNG")
for name in ("serving_default", "serving_source", "serving_task3"):
    answer = loaded.signatures[name](image_bytes=tf.constant([png.getvalue()]))
    print(name, answer["probabilities"].shape[1], answer["label"].numpy()[0].decode())
print(sorted(json.load(open({export!r} + "/assets/model_card.json"))["signatures"]))
""")
    assert served.returncode == 0, served.stderr[-3000:]
    lines = served.stdout.strip().split("\n")
    widths = {line.split()[0]: (int(line.split()[1]), line.split(maxsplit=2)[2])
              for line in lines[:3]}
    assert widths["serving_default"][0] == 5 and widths["serving_default"][1] in "56789"
    assert widths["serving_source"][0] == 5 and widths["serving_source"][1] in "01234"
    assert widths["serving_task3"][0] == 2
    assert widths["serving_task3"][1] in ("0", "1")
    assert "serving_task3" in lines[3] and "serving_pixels" in lines[3]


def test_reexported_the_run_serves_the_targets_classifier_alone(killed_and_resumed, tmp_path):
    import shutil

    run = str(tmp_path / "run")
    shutil.copytree(str(killed_and_resumed / "run"), run)  # The fixture's stays as it is.
    result = run_python(["-m", "keras_transfer.export", f"--run_dir={run}"])
    assert result.returncode == 0, result.stderr[-3000:]
    export = os.path.join(run, "export", "2")
    served = run_python(f"""
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load({export!r})
print(sorted(loaded.signatures))
print(loaded.signatures["serving_pixels"](pixels=tf.zeros([1, 8, 8, 1]))["probabilities"].shape)
""")
    assert served.returncode == 0, served.stderr[-3000:]
    names, shape = served.stdout.strip().split("\n")[-2:]
    assert names == str(["serving_default", "serving_pixels", "serving_pixels_uint8"])
    assert shape == "(1, 5)"


@pytest.mark.long
def test_with_a_baseline_every_task_alone_and_sequential_transfer_stand_beside_it(tmp_path):
    from keras_transfer.run import execute

    metrics = execute.run(RunConfig(**{**TINY, "phase": "multitask", "baseline": True,
                                       "export": False, "output_dir": str(tmp_path / "run"),
                                       "cache_dir": str(tmp_path / "cache")}))
    target, source = metrics["tasks"]
    assert target["alone"] == {key: metrics["baseline"]["test"][key] for key in target["alone"]}
    assert 0.0 <= source["alone"]["accuracy"] <= 1.0 and source["sequential"] is None
    assert 0.0 <= target["sequential"]["accuracy"] <= 1.0
    # The target's sequential transfer ran both phases on the cached source base.
    assert os.listdir(tmp_path / "cache" / "source")
    assert {"feature_extraction", "fine_tune"} <= {
        name.split(".")[0] for name in os.listdir(tmp_path / "run" / "baseline" / "sequential"
                                                   / "checkpoints")}
    with open(tmp_path / "run" / "report.md", encoding="utf-8") as handle:
        text = handle.read()
    assert "## Tasks trained together" in text and "Sequential transfer (the source" in text
    assert "Negative transfer" in text or "No negative transfer" in text


def test_the_report_flags_a_task_that_scored_below_itself_alone():
    from keras_transfer.evaluation import multitask_report

    def task(name, joint, alone, after_fine_tune=None):
        return {"name": name, "test": {"accuracy": joint}, "alone": {"accuracy": alone},
                "test_after_fine_tune": after_fine_tune and {"accuracy": after_fine_tune}}

    # The target as exported (0.9 after fine-tuning), the source at the joint
    # phase's end: what target-only fine-tuning left of its head does not count.
    tasks = [task("target", 0.7, 0.8), task("source", 0.95, 0.95, after_fine_tune=0.5)]
    assert multitask_report.negative_transfer(tasks, {"accuracy": 0.9}) == []
    tasks.append(task("task3", 0.6, 0.61))
    assert multitask_report.negative_transfer(tasks, {"accuracy": 0.79}) == ["target", "task3"]
