"""The classifier: raw pixels in, float32 probabilities out, and which
weights train in each phase."""

import keras
import numpy as np
import pytest

from keras_transfer import config as config_lib
from keras_transfer.models import backbones
from keras_transfer.models import classifier as model_lib

VGG16 = backbones.get("vgg16")
RESNET50 = backbones.get("resnet50")


def _pixels(channels, size=8, batch=4, dtype="float32"):
    return np.random.default_rng(0).integers(0, 256, (batch, size, size, channels)).astype(dtype)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_any_channel_count_and_input_size(channels):
    classifier = model_lib.build_classifier(VGG16, 5, image_size=32, channels=channels)
    probabilities = classifier.predict(_pixels(channels, size=13), verbose=0)
    assert probabilities.shape == (4, 5)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_grayscale_equals_its_rgb_copy():
    classifier = model_lib.build_classifier(VGG16, 3, image_size=32, channels=1)
    gray = _pixels(1)
    rgb_model = model_lib.build_classifier(VGG16, 3, image_size=32, channels=3)
    rgb_model.set_weights(classifier.get_weights())
    np.testing.assert_allclose(
        classifier.predict(gray, verbose=0),
        rgb_model.predict(np.repeat(gray, 3, axis=-1), verbose=0), rtol=1e-5, atol=1e-6)


def test_uint8_pixels_are_accepted():
    classifier = model_lib.build_classifier(VGG16, 2, image_size=32, channels=1)
    as_uint8 = classifier(keras.ops.convert_to_tensor(_pixels(1, dtype="uint8")))
    as_float = classifier(_pixels(1))
    np.testing.assert_allclose(as_uint8, as_float, rtol=1e-6)


def test_head_output_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        classifier = model_lib.build_classifier(VGG16, 3, image_size=32, channels=3)
        assert classifier(_pixels(3)).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _trainable_layers(classifier):
    return [layer.name for layer in model_lib.base_of(classifier).layers if layer.trainable
            and layer.weights]


def test_feature_extraction_trains_only_the_head():
    classifier = model_lib.build_classifier(VGG16, 5, image_size=32, channels=1)
    model_lib.set_trainable_for_phase(classifier, VGG16, "feature_extraction")
    assert [w.path for w in classifier.trainable_weights] == [
        "classifier/kernel", "classifier/bias"]


def test_fine_tune_unfreezes_top_block_of_vgg16():
    classifier = model_lib.build_classifier(VGG16, 5, image_size=32, channels=1)
    model_lib.set_trainable_for_phase(classifier, VGG16, "fine_tune")
    assert _trainable_layers(classifier) == ["block5_conv1", "block5_conv2", "block5_conv3"]
    model_lib.set_trainable_for_phase(classifier, VGG16, "fine_tune", "block4")
    assert _trainable_layers(classifier)[0] == "block4_conv1"
    model_lib.set_trainable_for_phase(classifier, VGG16, "fine_tune", "all")
    assert _trainable_layers(classifier)[0] == "block1_conv1"


def test_fine_tune_unfreezes_last_stage_of_resnet50_but_not_batchnorm():
    classifier = model_lib.build_classifier(RESNET50, 3, image_size=32, channels=3)
    model_lib.set_trainable_for_phase(classifier, RESNET50, "fine_tune")
    names = _trainable_layers(classifier)
    assert names and all(name.startswith("conv5_") for name in names)
    assert not any(name.endswith("_bn") for name in names)


def test_unknown_unfreeze_point_is_a_clear_error():
    classifier = model_lib.build_classifier(VGG16, 5, image_size=32, channels=1)
    with pytest.raises(config_lib.ConfigError, match="Received: unfreeze='block9'"):
        model_lib.set_trainable_for_phase(classifier, VGG16, "fine_tune", "block9")


def test_a_base_cut_lower_keeps_its_weights_and_its_own_top_block(tmp_path):
    whole = VGG16.build(32)
    weights = str(tmp_path / "base.weights.h5")
    whole.save_weights(weights)
    classifier = model_lib.build_classifier(VGG16, 5, image_size=32, channels=1,
                                            base_weights=weights, base_layer="block3")
    base = model_lib.base_of(classifier)
    names = [layer.name for layer in base.layers]
    assert names[-1] == "block3_pool" and "block4_conv1" not in names
    assert classifier.get_layer("pool").output.shape[-1] == 256
    np.testing.assert_array_equal(base.get_layer("block3_conv3").get_weights()[0],
                                  whole.get_layer("block3_conv3").get_weights()[0])
    # --unfreeze=top: the cut base's last block.
    model_lib.set_trainable_for_phase(classifier, VGG16, "fine_tune", "top")
    assert _trainable_layers(classifier) == ["block3_conv1", "block3_conv2", "block3_conv3"]
    with pytest.raises(config_lib.ConfigError, match="Received: base_layer='conv4'"):
        model_lib.build_classifier(VGG16, 5, image_size=32, channels=1, base_layer="conv4")


def test_batchnorm_statistics_stay_put_while_fine_tuning():
    """The base runs with training=False, so fitting never moves BN statistics."""
    classifier = model_lib.build_classifier(RESNET50, 3, image_size=32, channels=3)
    model_lib.set_trainable_for_phase(classifier, RESNET50, "fine_tune", "all")
    bn = model_lib.base_of(classifier).get_layer("conv5_block3_3_bn")
    before = [np.array(bn.moving_mean), np.array(bn.moving_variance)]
    conv = model_lib.base_of(classifier).get_layer("conv5_block3_3_conv")
    kernel_before = np.array(conv.kernel)
    # Eagerly: what the layers do in a step is the question, and tracing a
    # ResNet50's training step would take most of this test's time.
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy",
                       run_eagerly=True)
    labels = keras.utils.to_categorical([0, 1, 2, 0], 3)
    classifier.fit(_pixels(3, size=32), labels, epochs=1, verbose=0)
    np.testing.assert_array_equal(before[0], bn.moving_mean)
    np.testing.assert_array_equal(before[1], bn.moving_variance)
    assert not np.array_equal(kernel_before, conv.kernel)  # Yet the stage trained.


def test_scratch_model_updates_batchnorm_statistics():
    mobilenet = backbones.get("mobilenet_v2")  # Small, with BatchNormalization.
    classifier = model_lib.build_classifier(mobilenet, 3, image_size=32, channels=3,
                                            base_in_inference_mode=False)
    model_lib.set_batchnorm_momentum(classifier, 0.9)
    bn = model_lib.base_of(classifier).get_layer("bn_Conv1")
    assert bn.momentum == 0.9
    before = np.array(bn.moving_mean)
    classifier.compile(optimizer="adam", loss="categorical_crossentropy", run_eagerly=True)
    classifier.fit(_pixels(3, size=32), keras.utils.to_categorical([0, 1, 2, 0], 3),
                   epochs=1, verbose=0)
    assert not np.array_equal(before, bn.moving_mean)


def test_l2_sp_measures_the_distance_from_where_fine_tuning_started():
    classifier = model_lib.build_classifier(VGG16, 5, image_size=32, channels=1)
    model_lib.set_trainable_for_phase(classifier, VGG16, "fine_tune")  # block5 trains.
    release = model_lib.anchor_base_weights(classifier, strength=0.5)
    assert float(sum(classifier.losses)) == 0.0  # At the start: no distance.
    kernel = model_lib.base_of(classifier).get_layer("block5_conv3").kernel
    kernel.assign(kernel.numpy() + 0.1)
    # 0.5 x (number of weights) x 0.1^2, whatever the starting values were.
    expected = 0.5 * kernel.numpy().size * 0.01
    np.testing.assert_allclose(float(sum(classifier.losses)), expected, rtol=1e-3)
    # Frozen blocks carry no penalty, and released weights none at all.
    frozen = model_lib.base_of(classifier).get_layer("block4_conv1")
    assert frozen.kernel.regularizer is None
    release()
    assert not classifier.losses


def test_l2_sp_keeps_fine_tuned_weights_closer_to_the_start():
    def distance_after_fine_tuning(strength):
        keras.utils.set_random_seed(0)
        classifier = model_lib.build_classifier(VGG16, 2, image_size=32, channels=1)
        model_lib.set_trainable_for_phase(classifier, VGG16, "fine_tune")
        start = [w.numpy() for w in model_lib.base_of(classifier).trainable_weights]
        release = model_lib.anchor_base_weights(classifier, strength) if strength else None
        classifier.compile(optimizer=keras.optimizers.SGD(0.05),
                           loss="categorical_crossentropy")
        pixels = _pixels(1, size=32, batch=8)
        labels = np.eye(2, dtype="float32")[np.arange(8) % 2]
        classifier.fit(pixels, labels, epochs=10, batch_size=8, verbose=0)
        if release:
            release()
        return sum(float(np.sum((w.numpy() - s) ** 2)) for w, s in zip(
            model_lib.base_of(classifier).trainable_weights, start))

    free, anchored = distance_after_fine_tuning(0.0), distance_after_fine_tuning(5.0)
    assert free > 0 and anchored < 0.5 * free
