"""The backbone registry: every `keras.applications` model the tool can use.

Adding a backbone is one `BackboneSpec` entry. Entries name their Keras
constructor and preprocessing function as strings and resolve them only when
used, so importing this module (for example to validate flags) does not import
TensorFlow.
"""

import dataclasses
import importlib
from typing import Optional


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
      source_fine_tune_base_layer: where `--base_layer=auto` cuts a base
        pretrained on a small source task when the run fine-tunes it
        (`resolve_base_layer`); None: the block below the top one.
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
    source_fine_tune_base_layer: Optional[str] = None

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
            source_fine_tune_base_layer="block3",
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
            # VGG16's cut by analogy (the same five blocks); not measured.
            source_fine_tune_base_layer="block3",
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
            # The natural small student (--phase=distill): 0.94 M parameters
            # without its top. Its rescaling to [-1, 1] is a layer of the model
            # itself (`include_preprocessing`), so `preprocess_input` passes
            # pixels through unchanged.
            name="mobilenet_v3_small",
            module="mobilenet_v3",
            constructor="MobileNetV3Small",
            min_size=32,
            default_size=224,
            unfreeze_from="expanded_conv_10_expand",
            blocks={f"expanded_conv_{i}": f"expanded_conv_{i}_expand" for i in range(1, 11)},
            imagenet_notop_file="weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
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


# `--weights` kinds whose base this tool trained from scratch on a small task
# (a labelled source task, or unlabelled images by reconstruction): their
# deep features are specific to that task, so transfer cuts lower, unfreezes
# all of it and continues at the from-scratch rate.
TRAINED_HERE = ("source", "autoencoder")


def resolve_unfreeze(unfreeze, weights_kind):
    """Resolves `--unfreeze=auto` by where the base's weights came from.

    ImageNet (or a pre-staged file): the top block or stage, the textbook
    choice, as the lower layers' features are general. A base pretrained on a
    small source task (or not at all): the whole base, since its deep
    features are specific to the source classes. Evidence:
    benchmarks/RESULTS.md, "Evidence behind the defaults", `--unfreeze=auto`.
    """
    if unfreeze != "auto":
        return unfreeze
    return "all" if weights_kind in TRAINED_HERE + ("none",) else "top"


def resolve_base_layer(spec, base_layer, weights_kind, phase):
    """Resolves `--base_layer=auto` by where the base's weights came from
    and whether `phase` fine-tunes them.

    ImageNet, a file, or no weights: the whole base (`top`). A base
    pretrained on a small source task is cut lower, as its top blocks'
    features are the most specific to the source classes. A head alone on
    the frozen base needs features that separate the classes as they are:
    the block below the top one. Fine-tuning relearns what is above the cut
    from the target, and a lower cut suits a backbone whose top blocks hold
    most of its weights (`spec.source_fine_tune_base_layer`). Evidence:
    benchmarks/RESULTS.md, "Evidence behind the defaults", `--base_layer=auto`.
    """
    if base_layer != "auto":
        return base_layer
    if phase == "multitask" and weights_kind == "none":
        # The joint phase trains the base here, on the source task, as a
        # source base is; the target fine-tunes it. Measured: VGG16 at
        # block3 against top, 0.894 / 0.967 against 0.860 / 0.933 at 5 / 10
        # labels. On Fashion-MNIST's 30,000 source images the whole base left
        # VGG16's target level and lowered both ResNet50 tasks
        # (benchmarks/RESULTS.md, "Multi-task transfer").
        return spec.source_fine_tune_base_layer or list(spec.blocks)[-2]
    if weights_kind not in TRAINED_HERE:
        return "top"
    fine_tunes = phase in ("both", "fine_tune")
    return (fine_tunes and spec.source_fine_tune_base_layer) or list(spec.blocks)[-2]


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
