"""The registry: every entry builds, preprocesses and knows its top block."""

import numpy as np
import pytest

from keras_transfer.models import backbones
from keras_transfer.models import classifier as model_lib


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
                                  "efficientnet_b0"])
def test_entry_builds_at_min_size_and_knows_its_blocks(name):
    spec = backbones.get(name)
    base = spec.build(spec.min_size)
    layer_names = {layer.name for layer in base.layers}
    assert spec.unfreeze_from in layer_names
    assert set(spec.blocks.values()) <= layer_names
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    processed = np.asarray(spec.preprocess_input(pixels.copy()))
    assert processed.shape == pixels.shape and np.isfinite(processed).all()
    assert base(spec.preprocess_input(pixels)).shape[0] == 2


def test_preprocessing_is_the_backbones_own():
    pixels = np.full((1, 32, 32, 3), 255.0, "float32")
    # VGG16 and ResNet50 use caffe mode (BGR, ImageNet means subtracted);
    # MobileNetV2 scales to [-1, 1].
    assert np.asarray(backbones.get("vgg16").preprocess_input(pixels.copy())).max() < 255 - 100
    assert np.allclose(backbones.get("mobilenet_v2").preprocess_input(pixels.copy()), 1.0)
    # MobileNetV3 rescales inside the base: its preprocess_input passes pixels through.
    assert np.array_equal(backbones.get("mobilenet_v3_small").preprocess_input(pixels.copy()),
                          pixels)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Received: model='alexnet'"):
        backbones.get("alexnet")


def test_unfreeze_resolves_top_all_block_and_layer():
    spec = backbones.get("vgg16")
    assert backbones.unfreeze_start_layer(spec, "top") == "block5_conv1"
    assert backbones.unfreeze_start_layer(spec, "all") is None
    assert backbones.unfreeze_start_layer(spec, "block4") == "block4_conv1"
    assert backbones.unfreeze_start_layer(spec, "block3_conv2") == "block3_conv2"


def test_adding_a_backbone_is_one_entry(monkeypatch):
    entry = backbones.BackboneSpec(
        name="densenet121", module="densenet", constructor="DenseNet121",
        min_size=32, default_size=224, unfreeze_from="conv5_block1_0_bn",
        blocks={"conv5": "conv5_block1_0_bn"}, imagenet_notop_file="x.h5",
    )
    monkeypatch.setitem(backbones.REGISTRY, "densenet121", entry)
    classifier = model_lib.build_classifier(backbones.get("densenet121"), 3,
                                            image_size=32, channels=3)
    assert classifier.output_shape == (None, 3)


def test_auto_unfreeze_depends_on_where_the_weights_came_from():
    assert backbones.resolve_unfreeze("auto", "imagenet") == "top"
    assert backbones.resolve_unfreeze("auto", "file") == "top"
    assert backbones.resolve_unfreeze("auto", "source") == "all"
    assert backbones.resolve_unfreeze("block4", "source") == "block4"


def test_auto_base_layer_cuts_a_source_base_below_its_top_blocks():
    vgg16, resnet50 = backbones.get("vgg16"), backbones.get("resnet50")
    mobilenet = backbones.get("mobilenet_v2")
    # Fine-tuned: VGG's cut by its entry (measured), the rest one block
    # below the top; a head alone: one block below the top for all.
    assert backbones.resolve_base_layer(vgg16, "auto", "source", "both") == "block3"
    assert backbones.resolve_base_layer(vgg16, "auto", "source", "fine_tune") == "block3"
    assert backbones.resolve_base_layer(vgg16, "auto", "source",
                                        "feature_extraction") == "block4"
    assert backbones.resolve_base_layer(resnet50, "auto", "source", "both") == "conv4"
    assert backbones.resolve_base_layer(mobilenet, "auto", "source", "both") == "block_15"
    for kind in ("imagenet", "file", "none"):
        assert backbones.resolve_base_layer(vgg16, "auto", kind, "both") == "top"
    assert backbones.resolve_base_layer(vgg16, "block3", "source", "both") == "block3"
    assert backbones.resolve_base_layer(vgg16, "top", "source", "both") == "top"
