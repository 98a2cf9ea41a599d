"""`--phase=distill`: the loss against a hand computation, a student killed
mid-distillation that finishes as if never stopped, an export that holds the
student alone, a teacher left untouched, and the refusals."""

import hashlib
import os

import numpy as np
import pytest
from sklearn.datasets import load_digits

from conftest import TINY, built_once, run_main, run_python
from keras_transfer import config as config_lib, outputs
from keras_transfer.checks import ConfigError


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_loss_is_alpha_cross_entropy_plus_t_squared_kl_on_every_image():
    """Hinton et al.'s loss, image by image: the cross-entropy only where
    there is a label, the KL of the temperature-scaled softmaxes times T^2
    everywhere; validation targets (labels alone) give the cross-entropy."""
    import keras

    from keras_transfer.training import distillation

    rng = np.random.default_rng(0)
    student_logits, teacher_logits = rng.normal(size=(4, 3)), 2 * rng.normal(size=(4, 3))
    student, teacher = _softmax(student_logits), _softmax(teacher_logits)
    labels, has_label = np.eye(3)[[0, 1, 2, 0]], np.array([1, 1, 0, 0])
    temperature, alpha = 4.0, 0.3
    loss = distillation.DistillationLoss(3, temperature, alpha)
    packed = distillation.pack(labels, has_label, teacher).astype("float32")
    per_image = np.asarray(loss.call(keras.ops.convert_to_tensor(packed),
                                     keras.ops.convert_to_tensor(student.astype("float32"))))
    soft_teacher = _softmax(teacher_logits / temperature)
    soft_student = _softmax(student_logits / temperature)
    kl = (soft_teacher * np.log(soft_teacher / soft_student)).sum(axis=1)
    cross_entropy = -(labels * np.log(student)).sum(axis=1)
    expected = alpha * has_label * cross_entropy + (1 - alpha) * temperature ** 2 * kl
    np.testing.assert_allclose(per_image, expected, rtol=1e-5)
    assert np.isclose(float(loss(packed, student.astype("float32"))), expected.mean(),
                      rtol=1e-5)
    validation = np.asarray(loss.call(keras.ops.convert_to_tensor(labels.astype("float32")),
                                      keras.ops.convert_to_tensor(student.astype("float32"))))
    np.testing.assert_allclose(validation, -(labels * np.log(student)).sum(axis=1), rtol=1e-5)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A finished tiny run (VGG16 from scratch, no export) to learn from."""
    def build(folder):
        from keras_transfer.run import execute

        execute.run(config_lib.RunConfig(**{**TINY, "weights": "none", "export": False,
                                            "examples_per_class": 6,
                                            "output_dir": str(folder / "run")}))

    return str(built_once(tmp_path_factory, "distill_teacher", build) / "run")


def _digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _distill(output_dir, teacher, pool, kill_at=None, **overrides):
    settings = {**TINY, "phase": "distill", "teacher": teacher, "model": "mobilenet_v3_small",
                "weights": "none", "examples_per_class": 2, "unlabeled_data": str(pool),
                "epochs": 2, "fine_tune_epochs": 0, "early_stopping_patience": 0,
                "deterministic": True, "verbose": 2, "output_dir": output_dir, **overrides}
    return run_main(settings, kill_at)


@pytest.mark.long
def test_a_student_killed_mid_distillation_finishes_as_if_never_stopped(teacher, tmp_path):
    """Killed after its first epoch, the same command finishes the student
    bit-identical to one never stopped; the teacher's files are untouched, the
    export holds the student alone and its card names the teacher. It learns
    an unlabelled folder (`--unlabeled_data=FOLDER`) from its teacher too."""
    from test_messy_folders import encode, write

    pool = tmp_path / "pool"
    for index in range(4):
        write(str(pool / f"{index}.png"), encode("PNG", size=(16, 16)))
    checkpoint = os.path.join(teacher, "checkpoints", "scratch.weights.h5")
    before = _digest(checkpoint)
    killed = _distill(str(tmp_path / "run"), teacher, pool, kill_at="distill:1")
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-3000:]
    resumed = _distill(str(tmp_path / "run"), teacher, pool)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "phase distill resumed after epoch 1" in resumed.stdout
    assert "recording the teacher's outputs" in resumed.stdout
    whole = _distill(str(tmp_path / "whole"), teacher, pool, export=False)
    assert whole.returncode == 0, whole.stderr[-3000:]
    metrics = outputs.read_json(str(tmp_path / "run" / "metrics.json"))
    assert metrics["weights_fingerprint"] == outputs.read_json(
        str(tmp_path / "whole" / "metrics.json"))["weights_fingerprint"]
    assert _digest(checkpoint) == before
    entry = metrics["distillation"]
    assert (entry["labelled"], entry["unlabelled"]) == (10, 4)  # 5 classes, 2 labels each.
    assert "10 labelled and 4 unlabelled training images" in resumed.stdout
    assert entry["teacher"]["model"] == "vgg16" and entry["student"]["model"] == (
        "mobilenet_v3_small")
    assert 0.0 <= entry["agreement"] <= 1.0
    # Its cost beside the teacher's: operations per image, and (the teacher
    # ran with --noexport) the student's export measured alone.
    assert entry["teacher"]["flops_per_image"] > 10 * entry["student"]["flops_per_image"] > 0
    serving = entry["student"]["serving"]
    assert serving["size_bytes"] > 0 and serving["latency_ms_batch1"] > 0
    assert serving["images_per_second_batch64"] > 0 and entry["teacher"]["serving"] is None
    assert list(metrics["phases"]) == ["distill"]
    assert metrics["phases"]["distill"]["epochs_run"] == 2
    assert metrics["dataset"]["test_fingerprint"] == outputs.read_json(
        os.path.join(teacher, "metrics.json"))["dataset"]["test_fingerprint"]
    export = str(tmp_path / "run" / "export" / "1")
    served = run_python(f"""
import json, numpy as np, tensorflow as tf
loaded = tf.saved_model.load({export!r})
print(sum(int(np.prod(v.shape)) for v in loaded.variables))
serve = loaded.signatures["serving_pixels"]
print(serve(pixels=tf.zeros([2, 8, 8, 1]))["probabilities"].shape)
print(json.load(open({export!r} + "/assets/model_card.json"))["distilled_from"]["model"])
""")
    assert served.returncode == 0, served.stderr[-3000:]
    size, shape, teacher_model = served.stdout.split("\n")[-4:-1]
    # The student's weights and its Dropout's 2-number seed state: not one of
    # the teacher's 14.7 million.
    assert 0 <= int(size) - entry["student"]["parameters"] <= 2
    assert shape == "(2, 5)" and teacher_model == "vgg16"


def test_a_student_on_other_data_than_its_teacher_is_refused(teacher, tmp_path):
    from keras_transfer.run import execute

    def run(**overrides):
        execute.run(config_lib.RunConfig(**{
            **TINY, "phase": "distill", "teacher": teacher, "weights": "none",
            "output_dir": str(tmp_path / "student"), **overrides}))

    with pytest.raises(ConfigError, match=r"classes must be the teacher's \(None\) or left "
                                          r"out. Received: classes=\('0', '1'\)"):
        run(classes=("0", "1"))
    with pytest.raises(ConfigError, match=r"test_fraction must be the teacher's \(0.2\)"):
        run(test_fraction=0.3)
    with pytest.raises(ConfigError, match="teacher must be the output folder of a "
                                          "finished run"):
        run(teacher=str(tmp_path / "missing"))
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(ConfigError, match="teacher must be the output folder of a finished "
                                          r"run \(with metrics.json\)"):
        run(teacher=str(tmp_path / "unfinished"))
    with pytest.raises(ConfigError, match="unlabeled_data is what phase=distill's student"):
        config_lib.RunConfig(unlabeled_data="rest", examples_per_class=2)
    with pytest.raises(ConfigError, match="unlabeled_data's images have none"):
        config_lib.RunConfig(phase="distill", teacher=teacher, unlabeled_data="rest",
                             examples_per_class=2, class_weight="balanced")
    assert not (tmp_path / "student").exists()  # Refused before anything was written.


def test_the_rest_of_the_training_split_is_learnt_from_the_teacher_alone(teacher, tmp_path,
                                                                         console):
    """`--unlabeled_data=rest`: the training images beyond
    `--examples_per_class` join with their labels hidden (never a validation
    or test image); the metrics count the labelled ones."""
    from keras_transfer.run import execute

    metrics = execute.run(config_lib.RunConfig(**{
        **TINY, "phase": "distill", "teacher": teacher, "weights": "none",
        "model": "mobilenet_v3_small", "examples_per_class": 2, "unlabeled_data": "rest",
        "fine_tune_epochs": 0, "export": False, "baseline": True,
        "output_dir": str(tmp_path / "student")}))
    entry = metrics["distillation"]
    sizes = metrics["dataset"]["split_sizes"]
    # What validation and test do not hold of digits 5-9 is the training split.
    total = int(np.isin(load_digits().target, [5, 6, 7, 8, 9]).sum())
    assert entry["labelled"] == sizes["train"] == 10
    assert entry["unlabelled"] == total - sizes["validation"] - sizes["test"] - 10
    assert ("10 labelled and %d unlabelled training images" % entry["unlabelled"]) in (
        console.readouterr().out)
    # With --baseline: the same student from scratch, and the share of the
    # teacher's lead over it that the distilled student kept.
    scratch, teacher_accuracy = (metrics["baseline"]["test"]["accuracy"],
                                 entry["teacher"]["test"]["accuracy"])
    assert entry["scratch_test_accuracy"] == scratch
    if teacher_accuracy > scratch:
        assert np.isclose(entry["gap_closed"], (metrics["test"]["accuracy"] - scratch)
                          / (teacher_accuracy - scratch), atol=1e-4)
    report = open(tmp_path / "student" / "report.md").read()
    assert "## Distillation" in report and "| `mobilenet_v3_small` from scratch (same budget) |" in (
        report)


def test_training_metrics_count_the_labelled_images_only():
    """An unlabelled image has no label to be right or wrong about: the
    student's accuracy and F1 are over the labelled images of each batch."""
    import keras
    import tensorflow as tf

    from keras_transfer.training import distillation, phase

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    student = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    fitted = distillation.DistillingStudent(student, 3)
    phase.compile_classifier(fitted, tf.distribute.get_strategy(), 1e-3,
                             config_lib.RunConfig(), 3,
                             loss=distillation.DistillationLoss(3, 4.0, 0.5))
    images = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    answers = student.predict(images, verbose=0)
    right = np.eye(3)[answers.argmax(axis=1)]
    wrong = np.eye(3)[(answers.argmax(axis=1) + 1) % 3]
    labels = np.concatenate([right[:2], wrong[2:]])  # Only the labelled two are right.
    logs = fitted.evaluate(images, distillation.pack(labels, [1, 1, 0, 0, 0, 0, 0, 0], answers),
                           batch_size=8, verbose=0, return_dict=True)
    assert logs["accuracy"] == 1.0 and logs["f1"] > 0


def test_an_unlabelled_folder_never_lends_the_dataset_its_own_images(tmp_path):
    """`--unlabeled_data=FOLDER`: images anywhere under it, checked, broken
    ones skipped; the dataset's own images (its test and validation images
    above all, by file identity: a link is caught too) never join the pool."""
    from test_messy_folders import FRACTIONS, encode, make_folder, policy, write

    from keras_transfer.data import tasks, unlabeled

    dataset = make_folder(tmp_path / "all" / "data", {"cats": 12, "dogs": 12})
    data = tasks.load_task(dataset, None, role="target", seed=0,
                           folder_policy=policy(tmp_path), **FRACTIONS)
    for index in range(3):
        write(str(tmp_path / "all" / "extra" / "deep" / f"{index}.png"), encode("PNG"))
    write(str(tmp_path / "all" / "extra" / "broken.png"), b"\x89PNG not really")
    os.link(data.test.files[0], tmp_path / "all" / "extra" / "a_test_image.png")
    pool = unlabeled.load(str(tmp_path / "all"), data, policy(tmp_path))
    assert sorted(os.path.basename(path) for path in pool.examples.files) == [
        "0.png", "1.png", "2.png"]
    assert (pool.found, pool.broken, pool.of_the_target) == (29, 1, 25)
    with pytest.raises(ConfigError, match="unlabeled_data has no usable image that is not "
                                          "one of the dataset's own"):
        unlabeled.load(dataset, data, policy(tmp_path))


def test_an_unlabelled_folder_joins_an_in_memory_dataset_at_its_size(tmp_path):
    from test_messy_folders import encode, policy, write

    from keras_transfer.data import tasks, unlabeled

    data = tasks.load_task("digits", None, role="target", seed=0, validation_fraction=0.1,
                           test_fraction=0.2)
    write(str(tmp_path / "pool" / "big.jpg"), encode("JPEG", size=(64, 48)))
    pool = unlabeled.load(str(tmp_path / "pool"), data, policy(tmp_path))
    assert pool.examples.images.shape == (1, 8, 8, 1)
    assert pool.examples.images.dtype == data.train.images.dtype
