"""The backbone registry: every `keras.applications` model the tool can use.

Adding a backbone is one `BackboneSpec` entry. Entries name their Keras
constructor and preprocessing function as strings and resolve them only when
used, so importing this module (for example to validate flags) does not import
TensorFlow.
"""

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What the tool needs to know about one `keras.applications` model.

    Attributes:
      name: the registry key, as given to `--model`.
      module: submodule of `keras.applications` holding `preprocess_input`.
      constructor: class-like function in `keras.applications`.
      min_size: smallest square input the constructor accepts without top.
      default_size: the resolution its ImageNet weights were trained at.
      unfreeze_from: first layer of the top block or stage, unfrozen by
        default in the fine-tune phase.
      blocks: block or stage name -> its first layer, for `--unfreeze=NAME`.
      imagenet_notop_file: file name of the ImageNet no-top weights in Keras'
        cache (`$KERAS_HOME/models`), so a cached copy is found offline.
      scratch_learning_rate: Adam learning rate that trains it from random
        initialisation. Plain deep stacks without BatchNormalization (VGG)
        stall or diverge at 1e-3 and need 1e-4.
    """

    name: str
    module: str
    constructor: str
    min_size: int
    default_size: int
    unfreeze_from: str
    blocks: dict
    imagenet_notop_file: str
    scratch_learning_rate: float = 1e-3

    def build(self, input_size, weights=None):
        """Returns the base network (no top) for square RGB `input_size`."""
        import keras  # Deferred: keep the registry importable without TF.

        constructor = getattr(keras.applications, self.constructor)
        return constructor(
            include_top=False,
            weights=weights,
            input_shape=(input_size, input_size, 3),
        )

    def preprocess_input(self, images):
        """Applies the backbone's own preprocessing to RGB pixels in 0-255."""
        module = importlib.import_module(f"keras.applications.{self.module}")
        return module.preprocess_input(images)


REGISTRY = {
    spec.name: spec
    for spec in [
        BackboneSpec(
            name="vgg16",
            module="vgg16",
            constructor="VGG16",
            min_size=32,
            default_size=224,
            unfreeze_from="block5_conv1",
            blocks={f"block{i}": f"block{i}_conv1" for i in range(1, 6)},
            imagenet_notop_file=(
                "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
            ),
            scratch_learning_rate=1e-4,
        ),
        BackboneSpec(
            name="vgg19",
            module="vgg19",
            constructor="VGG19",
            min_size=32,
            default_size=224,
            unfreeze_from="block5_conv1",
            blocks={f"block{i}": f"block{i}_conv1" for i in range(1, 6)},
            imagenet_notop_file=(
                "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
            ),
            scratch_learning_rate=1e-4,
        ),
        BackboneSpec(
            name="resnet50",
            module="resnet",
            constructor="ResNet50",
            min_size=32,
            default_size=224,
            unfreeze_from="conv5_block1_1_conv",
            blocks={f"conv{i}": f"conv{i}_block1_1_conv" for i in range(2, 6)},
            imagenet_notop_file=(
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
            ),
        ),
        BackboneSpec(
            name="mobilenet_v2",
            module="mobilenet_v2",
            constructor="MobileNetV2",
            min_size=32,
            default_size=224,
            unfreeze_from="block_16_expand",
            blocks={f"block_{i}": f"block_{i}_expand" for i in range(1, 17)},
            imagenet_notop_file=(
                "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
            ),
        ),
        BackboneSpec(
            name="efficientnet_b0",
            module="efficientnet",
            constructor="EfficientNetB0",
            min_size=32,
            default_size=224,
            unfreeze_from="block7a_expand_conv",
            blocks={
                f"block{i}": f"block{i}a_expand_conv" for i in range(2, 8)
            },
            imagenet_notop_file="efficientnetb0_notop.h5",
        ),
    ]
}


def get(name):
    """Returns the registry entry for `name` or raises a clear ValueError."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"model must be one of {sorted(REGISTRY)}. Received: model={name!r}"
        ) from None


def resolve_unfreeze(unfreeze, weights_kind):
    """Resolves `--unfreeze=auto` by where the base's weights came from.

    ImageNet (or a pre-staged file): the top block or stage, the textbook
    choice, as the lower layers' features are general. A base pretrained on a
    small source task: the whole base, since its deep features are specific
    to the source classes. Measured on digits 0-4 -> 5-9 (same base, fine-tune
    at 1e-4): ResNet50 0.88 with conv5 unfrozen, 0.93 from conv4, 0.97 all;
    VGG16 0.97 with block5, 0.99 all.
    """
    if unfreeze != "auto":
        return unfreeze
    return "all" if weights_kind in ("source", "none") else "top"


def resolve_base_layer(spec, base_layer, weights_kind):
    """Resolves `--base_layer=auto` by where the base's weights came from.

    ImageNet, a file, or no weights: the whole base (`top`). A base
    pretrained on a small source task: the output of the block below its top
    one (VGG16 `block4`, ResNet50 `conv4`), as the top block's features are
    the most specific to the source classes. Measured on digits 0-4 -> 5-9
    at 10 labels per class (benchmarks/RESULTS.md): VGG16 0.888 -> 0.909,
    ResNet50 0.764 -> 0.834.
    """
    if base_layer != "auto":
        return base_layer
    return list(spec.blocks)[-2] if weights_kind == "source" else "top"


def unfreeze_start_layer(spec, unfreeze):
    """Resolves `--unfreeze` to the name of the first layer to train.

    `unfreeze` is `"top"` (the entry's top block or stage), `"all"` (the whole
    base, returned as None), a block name from `spec.blocks`, or a layer name
    (checked against the real base when the model is built).
    """
    if unfreeze == "top":
        return spec.unfreeze_from
    if unfreeze == "all":
        return None
    return spec.blocks.get(unfreeze, unfreeze)
