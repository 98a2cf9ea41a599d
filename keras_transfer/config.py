"""The run configuration: one frozen dataclass, validated on construction.

No TensorFlow and no absl here: `cli/main.py` turns flags into a `RunConfig`, and
tests build one directly. Every error names the flag and the value received.
"""

import dataclasses
import os
from typing import Optional, Tuple

from keras_transfer import (autoencoder_checks, data_checks, distill_checks, multitask_checks,
                            semi_supervised_checks)
from keras_transfer.checks import ConfigError, require, validate_choice, validate_range
from keras_transfer.models import backbones

PHASES = ("feature_extraction", "fine_tune", "both", "pretrain", "distill",
          multitask_checks.MULTITASK)
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
WEIGHT_KEYWORDS = ("auto", "imagenet", "none", "source", autoencoder_checks.AUTOENCODER)
AUGMENTATIONS = ("flip", "rotation", "zoom")
CLASS_WEIGHTS = ("none", "balanced")
FEATURE_CACHE = ("auto", "memory", "disk", "off")
SCHEDULES = ("cosine", "constant")
# Validation quantities a phase can keep its best epoch by (Keras log names).
MONITORS = ("val_loss", "val_accuracy", "val_f1", "val_precision", "val_recall", "val_auc")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one run needs. Field names are the CLI flag names."""

    model: str = "vgg16"
    phase: str = "both"
    weights: str = "auto"
    dataset: str = "digits"
    classes: Optional[Tuple[str, ...]] = None
    source_dataset: Optional[str] = None
    source_classes: Optional[Tuple[str, ...]] = None
    output_dir: Optional[str] = None
    strategy: str = "auto"
    cpu_replicas: int = 0
    image_size: Optional[int] = None
    batch_size: int = 32
    min_steps_per_epoch: int = 20
    epochs: int = 2
    learning_rate: float = 1e-3
    fine_tune_epochs: int = 6
    fine_tune_learning_rate: Optional[float] = None
    fine_tune_schedule: str = "cosine"
    pretrain_epochs: int = 5
    pretrain_learning_rate: Optional[float] = None
    unfreeze: str = "auto"
    base_layer: str = "auto"
    dropout: float = 0.2
    l2: float = 0.0
    l2_sp: float = 0.0
    # Few labels: without it the loss drives train logits to certainty in one
    # fine-tune epoch and the best epoch by val_loss is the first (issue 8).
    label_smoothing: float = 0.1
    augment: Tuple[str, ...] = ()
    class_weight: str = "none"
    examples_per_class: int = 0
    source_examples_per_class: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.2
    early_stopping_patience: int = 5
    baseline: bool = False
    repeats: int = 1
    monitor: str = "val_loss"
    keep_best_phase: bool = True
    seed: int = 0
    mixed_precision: bool = False
    jit_compile: bool = False
    deterministic: bool = False
    export: bool = True
    export_tflite: bool = False
    cache_dir: Optional[str] = None
    tfds_data_dir: Optional[str] = None
    tfds_split: Optional[str] = None
    split_file: Optional[str] = None
    max_broken_fraction: float = 0.05
    max_megapixels: float = 50.0
    feature_cache: str = "auto"
    feature_cache_copies: int = 0
    teacher: Optional[str] = None
    temperature: float = 4.0
    distill_alpha: float = 0.5
    unlabeled_data: Optional[str] = None
    # Masked beat denoising on 7 of 8 seed and label-count pairs (VGG16,
    # digits 5-9; benchmarks/RESULTS.md, "Autoencoder pretraining").
    autoencoder: str = "masked"
    noise_stddev: float = 0.2
    mask_ratio: float = 0.5
    pretrain_objective: str = "supervised"
    semi_supervised: str = "none"
    # None: the method's own (`semi_supervised_checks.DEFAULT_CONFIDENCE_THRESHOLD`).
    confidence_threshold: Optional[float] = None
    unlabeled_ratio: int = 7
    unlabeled_weight: float = 1.0
    unlabeled_warmup_epochs: int = 1
    # Phase 3 goes on training the fine-tuned network with a fresh Adam; at
    # the full fine-tuning rate from its first step it knocked ResNet50 on
    # digits from 100 % to 35 % training accuracy, and FixMatch learnt that
    # model's wrong pseudo-labels. One epoch's rise from 0: FixMatch 0.894
    # against 0.847 on ResNet50 (0.903 against 0.909 on VGG16), self-training
    # level (0.972 / 0.927 against 0.968 / 0.929; benchmarks/RESULTS.md).
    semi_supervised_warmup_epochs: int = 1
    semi_supervised_epochs: Optional[int] = None  # None: --fine_tune_epochs.
    # Each round labels more of the pool (digits, 5 labels a class: 54 %, 70 %,
    # then 85 % by the fourth, 99.7 % right): four rounds scored above two on
    # every seed, 0.968 against 0.952 (benchmarks/RESULTS.md).
    self_training_rounds: int = 4
    tasks: Tuple[str, ...] = ()
    task_sampling: str = "joint"
    task_weights: Tuple[float, ...] = ()
    task_weighting: str = "fixed"
    export_heads: str = "target"
    fine_tune_tasks: str = "target"
    verbose: int = 2

    def __post_init__(self):
        _validate(self)

    def to_dict(self):
        """A JSON-ready dict of the settings (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @property
    def backbone(self):
        return backbones.get(self.model)

    @property
    def scratch_learning_rate(self):
        """`--pretrain_learning_rate`, or the backbone's own from-scratch rate."""
        return self.pretrain_learning_rate or self.backbone.scratch_learning_rate

    def fine_tune_rate_for(self, weights_kind):
        """`--fine_tune_learning_rate`, or by where the base's weights came
        from. A base trained from scratch on a small source task (or not at
        all) continues its training at the rate it was trained at
        (`scratch_learning_rate`: VGG 1e-4, others 1e-3); ImageNet or file
        weights at 1e-4, ten times below the head's (evidence:
        benchmarks/RESULTS.md, "Evidence behind the defaults")."""
        if self.fine_tune_learning_rate is not None:
            return self.fine_tune_learning_rate
        return (self.scratch_learning_rate if weights_kind in backbones.TRAINED_HERE + ("none",)
                else 1e-4)

    @property
    def resolved_confidence_threshold(self):
        """`--confidence_threshold`, else `--semi_supervised`'s own default."""
        return semi_supervised_checks.confidence_threshold(self.semi_supervised,
                                                           self.confidence_threshold)

    @property
    def resolved_source_dataset(self):
        """The source task's dataset: the target's own when not given."""
        return self.source_dataset or self.dataset


CACHE_ENV = "KERAS_TRANSFER_CACHE"


def cache_root(config):
    """Where source bases and recorded features are cached: `--cache_dir`,
    else `$KERAS_TRANSFER_CACHE`, else `~/.cache/keras_transfer`."""
    return config.cache_dir or os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "keras_transfer")


# Beyond it one decoded image no longer fits in memory (100,000 px: 120 GB),
# and the input pipeline, which skips images that fail, would skip them all.
MAX_IMAGE_SIZE = 4096


def _validate(config):
    try:
        spec = backbones.get(config.model)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    validate_choice("phase", config.phase, PHASES)
    validate_choice("strategy", config.strategy, STRATEGIES)
    validate_choice("class_weight", config.class_weight, CLASS_WEIGHTS)
    validate_choice("feature_cache", config.feature_cache, FEATURE_CACHE)
    # Pretraining trains and saves a whole base (what --weights=PATH loads);
    # an autoencoder's decoder starts where the base is cut.
    require(config.phase != "pretrain" or config.base_layer in ("top", "auto")
            or autoencoder_checks.pretrains_base_as_autoencoder(config),
             "base_layer cuts the base for transfer; phase=pretrain trains a whole base. "
             f"Received: base_layer={config.base_layer!r}, phase={config.phase!r}")
    require(config.export or not config.export_tflite,
             "export_tflite writes into the SavedModel's version folder: it needs --export. "
             f"Received: export={config.export}, export_tflite={config.export_tflite}")
    require(config.feature_cache_copies >= 0,
             "feature_cache_copies must be >= 0. "
             f"Received: feature_cache_copies={config.feature_cache_copies}")
    # Copies are augmented views: without augmentation they would all be the
    # same, and with the cache off nothing would record them.
    require(not config.feature_cache_copies or (
        config.augment and config.feature_cache != "off"),
        "feature_cache_copies needs --augment and a feature cache (not --feature_cache=off). "
        f"Received: feature_cache_copies={config.feature_cache_copies}, "
        f"augment={','.join(config.augment)!r}, feature_cache={config.feature_cache!r}")
    validate_choice("fine_tune_schedule", config.fine_tune_schedule, SCHEDULES)
    validate_choice("monitor", config.monitor, MONITORS)
    require(
        config.weights in WEIGHT_KEYWORDS or os.path.isfile(config.weights),
        f"weights must be one of {list(WEIGHT_KEYWORDS)} or an existing "
        f"weights file. Received: weights={config.weights!r}",
    )
    data_checks.validate_dataset_spec("dataset", config.dataset)
    data_checks.validate_dataset_spec("source_dataset", config.source_dataset)
    for name in ("classes", "source_classes"):
        value = getattr(config, name)
        if value is not None:
            require(
                len(value) >= 2 and len(set(value)) == len(value),
                f"{name} must name at least two distinct classes. "
                f"Received: {name}={','.join(value)!r}",
            )
    for augmentation in config.augment:
        validate_choice("augment", augmentation, AUGMENTATIONS)
    if config.image_size is not None:
        require(
            spec.min_size <= config.image_size <= MAX_IMAGE_SIZE,
            f"image_size must be >= {spec.min_size} for model={config.model} and <= "
            f"{MAX_IMAGE_SIZE}. Received: image_size={config.image_size}",
        )
    for name in (
        "epochs",
        "fine_tune_epochs",
        "examples_per_class",
        "source_examples_per_class",
        "early_stopping_patience",
        "cpu_replicas",
        "verbose",
        "seed",
    ):
        validate_range(name, getattr(config, name), 0)
    validate_range("batch_size", config.batch_size, 1)
    validate_range("min_steps_per_epoch", config.min_steps_per_epoch, 1)
    # Every worker must find the chief's backups, and a default folder is
    # named by the time each worker starts.
    require(config.strategy != "multi_worker" or config.output_dir,
             "strategy=multi_worker needs --output_dir (the same path on every worker, "
             "on storage they share). Received: output_dir=None")
    # Training from scratch (pretrain, the source task) needs at least an epoch.
    validate_range("pretrain_epochs", config.pretrain_epochs, 1)
    if config.baseline:
        require(
            config.epochs + config.fine_tune_epochs > 0,
            "baseline trains from scratch on the run's budget (epochs + "
            "fine_tune_epochs), which is 0. Received: epochs="
            f"{config.epochs}, fine_tune_epochs={config.fine_tune_epochs}",
        )
    # A run whose phases train no epoch has nothing to evaluate or export.
    trained = {"feature_extraction": ("epochs",), "fine_tune": ("fine_tune_epochs",),
               "both": ("epochs", "fine_tune_epochs")}.get(config.phase, ())
    require(
        not trained or sum(getattr(config, name) for name in trained) > 0,
        f"phase={config.phase} trains {' + '.join(trained)} epochs, which is 0. Received: "
        + ", ".join(f"{name}={getattr(config, name)}" for name in trained),
    )
    validate_range("repeats", config.repeats, 1)
    for name in ("learning_rate", "fine_tune_learning_rate", "pretrain_learning_rate"):
        if getattr(config, name) is not None:
            validate_range(name, getattr(config, name), 0, low_inclusive=False)
    validate_range("dropout", config.dropout, 0.0, 0.99)
    validate_range("l2", config.l2, 0.0)
    validate_range("l2_sp", config.l2_sp, 0.0)
    validate_range("label_smoothing", config.label_smoothing, 0.0, 0.99)
    validate_range("validation_fraction", config.validation_fraction, 0.0, 0.5, False)
    validate_range("test_fraction", config.test_fraction, 0.0, 0.5, False)
    validate_range("max_broken_fraction", config.max_broken_fraction, 0.0, 1.0)
    validate_range("max_megapixels", config.max_megapixels, 0.0, low_inclusive=False)
    data_checks.validate_data_options(config)
    distill_checks.validate(config)
    autoencoder_checks.validate(config)
    semi_supervised_checks.validate(config)
    multitask_checks.validate(config)
    require(config.cache_dir is None or not os.path.exists(config.cache_dir)
             or os.path.isdir(config.cache_dir),
             f"cache_dir must be a folder (created if missing). Received: "
             f"cache_dir={config.cache_dir!r}")
    if config.phase == "pretrain":
        require(
            config.weights in ("auto", "none"),
            "phase=pretrain trains the whole network from random "
            f"initialisation. Received: weights={config.weights!r}",
        )
    # Repeating needs every seed to train phase 1 itself; a fine_tune run
    # continues one stored phase-1 result, and pretrain has nothing to compare.
    require(
        config.repeats == 1 or config.phase in ("feature_extraction", "both"),
        "repeats > 1 needs phase=both or phase=feature_extraction. "
        f"Received: repeats={config.repeats}, phase={config.phase!r}",
    )
