"""The wrappers that add their own loss terms to Keras' step (FixMatch's
unlabelled loss, multi-task's per-task losses and learned log-variances)
train on two mirrored replicas exactly as on one device with the same
global batch: each term is divided among the replicas as the compiled loss
is, and FixMatch's threshold is relative to the global labelled batch."""

from conftest import run_python

SCRIPT = r"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from keras_transfer.training import fixmatch, loop as loop_lib, multitask_model

rng = np.random.default_rng(0)
def onehot(classes, n):
    return np.eye(classes, dtype="float32")[rng.integers(0, classes, n)]
x = [rng.normal(size=(8, 5)).astype("float32") for _ in range(3)]
labels, pool = onehot(3, 8), np.concatenate([onehot(3, 8), np.ones((8, 1), "float32")], 1)
source = onehot(2, 8)

def heads():
    shared = keras.layers.Dense(4, activation="relu", name="shared")
    made = []
    for number, classes in enumerate((3, 2)):
        inputs = keras.Input((5,))
        made.append(keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(
            shared(inputs)), name=f"head{number}"))
    return made

def multitask():
    model = multitask_model.MultiTaskModel(heads(), ["target", "source"], uncertainty=True,
                                           label_smoothing=0.1)
    return model, tf.data.Dataset.from_tensors(((x[0], x[1]), (labels, source)))

def fixmatch_model():
    # A threshold half the mean confidence: some pseudo-labels pass, some not.
    model = fixmatch.FixMatchModel(heads()[0], num_classes=3, threshold=0.9, weight=1.0,
                                   warmup_steps=0, labels_known=True)
    return model, tf.data.Dataset.from_tensors(((x[0], x[1], x[2]), (labels, pool)))

def trained(strategy, make):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model, data = make()
        model.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    logs = loop_lib.Loop(model, strategy).fit(data.repeat(3), epochs=1)
    return [np.asarray(w) for w in model.weights], logs

# One strategy of each for both models: two MirroredStrategy objects in one
# process reuse the same collective keys.
one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
for make in (multitask, fixmatch_model):
    one, one_logs = trained(one_device, make)
    two, two_logs = trained(mirrored, make)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for name, value in one_logs.items():
        np.testing.assert_allclose(value, two_logs[name], rtol=1e-5, atol=1e-6, err_msg=name)
    print(make.__name__, "same", sorted(one_logs))
"""


def test_fixmatch_and_multitask_steps_on_two_replicas_equal_one_device():
    result = run_python(SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout.split("\n")
    assert said[0].startswith("multitask same") and "source_weight" in said[0]
    assert said[1].startswith("fixmatch_model same") and "mask_rate" in said[1]
