"""Where the base's knowledge comes from: `--weights` resolved to one source.

`imagenet` uses Keras' own cache (`$KERAS_HOME/models`); with no cached file
and no network it fails within seconds, before anything is written. `source`
pretrains the base on a source task and caches the result by its settings.
`auto` takes ImageNet when it can be had, else the embedded source task.
"""

import dataclasses
import hashlib
import json
import os
import socket
from typing import Optional

import keras_transfer
from keras_transfer import config as config_lib, data_checks
from keras_transfer import autoencoder_checks, multitask_checks
from keras_transfer.config import ConfigError
from keras_transfer.data import sources
from keras_transfer.models import backbones

# Keras downloads application weights from this host.
WEIGHTS_HOST = ("storage.googleapis.com", 443)
OFFLINE_ENV = sources.OFFLINE_ENV


class WeightsError(ConfigError):
    """The requested weights cannot be had; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class ResolvedWeights:
    """What `--weights` resolved to.

    kind: "imagenet", "source", "autoencoder", "file" or "none".
    load: what `classifier.build_classifier` loads: "imagenet" (Keras downloads),
      a file path, or None. For "source" it is the cached base file, which
      may not exist yet (then the source task is pretrained first); for
      "autoencoder" likewise the cached encoder.
    detail: one human-readable line, printed and recorded.
    """

    requested: str
    kind: str
    load: Optional[str]
    detail: str
    source_task: Optional[dict] = None

    def to_dict(self):
        return dataclasses.asdict(self)


def keras_home():
    return os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))


def imagenet_cache_path(spec):
    return os.path.join(keras_home(), "models", spec.imagenet_notop_file)


def network_reachable(timeout=3.0):
    """True when Keras' weights host answers within `timeout` seconds."""
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return False
    try:
        with socket.create_connection(WEIGHTS_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def source_task(config):
    """The source task's (dataset, classes), or None when there is none."""
    if config.source_dataset is None and config.source_classes is None:
        if config.dataset not in sources.EMBEDDED_SOURCE_CLASSES:
            return None
    return {
        "dataset": config.resolved_source_dataset,
        "classes": list(config.source_classes) if config.source_classes else None,
    }


def source_cache_file(config, image_size):
    """The cache file for a source-pretrained base, keyed by its settings."""
    key = {
        "model": config.model,
        "image_size": image_size,
        "source": source_task(config),
        "source_examples_per_class": config.source_examples_per_class,
        "pretrain_epochs": config.pretrain_epochs,
        "pretrain_learning_rate": config.scratch_learning_rate,
        "batch_size": config.batch_size,
        "min_steps_per_epoch": config.min_steps_per_epoch,
        "augment": list(config.augment),
        # The rest of what shapes the pretrained weights: the head's
        # regularisation, the loss, and which epoch is kept.
        "dropout": config.dropout,
        "l2": config.l2,
        "label_smoothing": config.label_smoothing,
        "monitor": config.monitor,
        "early_stopping_patience": config.early_stopping_patience,
        "seed": config.seed,
        "version": keras_transfer.__version__,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    folder = os.path.join(config_lib.cache_root(config), "source", f"{config.model}-{digest[:16]}")
    return os.path.join(folder, "base.weights.h5")


def autoencoder_cache_file(config, image_size, base_layer):
    """The cache file for an autoencoder's encoder, keyed by every setting
    that shapes it: the objective, the cut (the decoder starts there), the
    pool (the source task, the target's training split, `--unlabeled_data`)
    and the training."""
    key = {
        "model": config.model,
        "image_size": image_size,
        "base_layer": base_layer,
        "objective": config.autoencoder,
        "noise_stddev": config.noise_stddev if config.autoencoder == "denoising" else None,
        "mask_ratio": config.mask_ratio if config.autoencoder == "masked" else None,
        "source": _pool_source_task(config),
        "source_examples_per_class": config.source_examples_per_class,
        # The target's training split: which images, and how many of them
        # (all of them with `rest`, whatever the cap).
        "target": [data_checks.dataset_identity(config.dataset), config.classes,
                   config.split_file, config.tfds_split, config.validation_fraction,
                   config.test_fraction,
                   "all" if config.unlabeled_data == "rest" else config.examples_per_class],
        "unlabeled_data": (config.unlabeled_data if config.unlabeled_data in (None, "rest")
                           else os.path.realpath(config.unlabeled_data)),
        "pretrain_epochs": config.pretrain_epochs,
        "pretrain_learning_rate": config.scratch_learning_rate,
        "batch_size": config.batch_size,
        "min_steps_per_epoch": config.min_steps_per_epoch,
        "early_stopping_patience": config.early_stopping_patience,
        "seed": config.seed,
        "version": keras_transfer.__version__,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    folder = os.path.join(config_lib.cache_root(config), "autoencoder",
                          f"{config.model}-{digest[:16]}")
    return os.path.join(folder, "base.weights.h5")


def _pool_source_task(config):
    """The source task whose images an autoencoder also reconstructs: none
    for `--phase=pretrain`, which pretrains on its dataset alone, nor where
    the dataset's embedded source shares the target's classes (asked for
    with `--source_dataset` or `--source_classes`, that is refused)."""
    task = None if config.phase == "pretrain" else source_task(config)
    asked = config.source_dataset is not None or config.source_classes is not None
    if task is not None and not asked and _shared_classes(config, task):
        return None
    return task


def _autoencoder(config, image_size):
    task = _pool_source_task(config)
    if task is not None:
        _refuse_shared_classes(config, task)
    base_layer = backbones.resolve_base_layer(config.backbone, config.base_layer,
                                              autoencoder_checks.AUTOENCODER, config.phase)
    path = autoencoder_cache_file(config, image_size, base_layer)
    pool = ["the target's training images"]
    if config.unlabeled_data:
        pool.append(f"--unlabeled_data={config.unlabeled_data}")
    if task is not None:
        pool.append(f"source task {task['dataset']} without labels")
    detail = (f"encoder of a {config.autoencoder} autoencoder (cut at {base_layer}) on "
              f"{', '.join(pool)}; " + (f"reusing cached {path}" if os.path.isfile(path)
                                        else f"trained by this run into the cache at {path}"))
    return ResolvedWeights(config.weights, autoencoder_checks.AUTOENCODER, path, detail,
                           task)


def _imagenet(config, spec):
    cached = imagenet_cache_path(spec)
    if os.path.isfile(cached):
        return ResolvedWeights(
            config.weights, "imagenet", cached, f"ImageNet weights from Keras' cache {cached}"
        )
    if network_reachable():
        return ResolvedWeights(
            config.weights, "imagenet", "imagenet",
            f"ImageNet weights downloaded by Keras into {os.path.dirname(cached)}",
        )
    return None


def _shared_classes(config, task):
    """Target classes the source task would also train on (same dataset):
    its pretraining would see the target's test images."""
    if task["dataset"] != config.dataset:
        return []

    def named(classes, table):
        chosen = classes or table.get(config.dataset)
        return None if chosen is None else {str(name) for name in chosen}  # None: all.

    source = named(task["classes"], sources.EMBEDDED_SOURCE_CLASSES)
    target = named(config.classes, sources.EMBEDDED_TARGET_CLASSES)
    if source is None or target is None:
        return sorted(target or source or {"all"})
    return sorted(source & target)


def _refuse_shared_classes(config, task):
    shared = _shared_classes(config, task)
    if shared:
        raise WeightsError(
            f"the source task would pretrain on target classes of the same dataset "
            f"({', '.join(shared)} of {config.dataset}), test images included, and the test "
            "accuracy would not be honest: pass --source_classes apart from --classes, or "
            "another --source_dataset")


def _source(config, image_size):
    task = source_task(config)
    if task is None:
        return None
    _refuse_shared_classes(config, task)
    path = source_cache_file(config, image_size)
    cached = os.path.isfile(path)
    classes = ",".join(task["classes"]) if task["classes"] else "default classes"
    detail = (
        f"base pretrained on source task {task['dataset']} ({classes}); "
        + (f"reusing cached {path}" if cached
           else f"pretrained by this run into the cache at {path}")
    )
    return ResolvedWeights(config.weights, "source", path, detail, task)


def _check_file(spec, path):
    """Loads `path` into a fresh base once, at the backbone's smallest size
    (the weights do not depend on it), so that a file which is not this
    backbone's base weights stops the run before anything is written."""
    try:
        spec.build(spec.min_size).load_weights(path)
    except Exception as error:  # h5py, Keras and the OS each raise their own.
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise WeightsError(
            f"weights={path} cannot be loaded into {spec.name}'s base (pass a weights file "
            f"of {spec.name} without its top, e.g. Keras' *_notop.h5, or what "
            f"--phase=pretrain saved): {reason}") from None


def resolve(config, image_size):
    """Resolves `config.weights`; raises WeightsError before any writing."""
    spec = config.backbone
    if autoencoder_checks.pretrains_autoencoder(config):
        return _autoencoder(config, image_size)
    if config.phase == multitask_checks.MULTITASK and config.weights == "auto":
        # The source task trains together with the target, not before it.
        return _imagenet(config, spec) or ResolvedWeights(
            config.weights, "none", None, "random initialisation (phase=multitask trains the "
            "source task together with the target)")
    if config.weights == "none" or config.phase == "pretrain":
        return ResolvedWeights(config.weights, "none", None, "random initialisation")
    if config.weights not in config_lib.WEIGHT_KEYWORDS:
        path = os.path.abspath(config.weights)
        _check_file(spec, path)
        return ResolvedWeights(config.weights, "file", path, f"base weights from {path}")
    if config.weights in ("auto", "imagenet"):
        resolved = _imagenet(config, spec)
        if resolved is not None:
            return resolved
        if config.weights == "imagenet":
            raise WeightsError(
                f"weights=imagenet: no cached ImageNet weights for {spec.name} at "
                f"{imagenet_cache_path(spec)} and {WEIGHTS_HOST[0]} is unreachable. "
                "Copy the file there from a machine with network (or set "
                "KERAS_HOME), or pass --weights=PATH to a pre-staged weights file"
            )
    resolved = _source(config, image_size)
    if resolved is not None:
        return resolved
    if config.weights == "source":
        raise WeightsError(
            f"weights=source needs a source task: dataset={config.dataset} has no "
            "embedded one; pass --source_dataset (and --source_classes)"
        )
    raise WeightsError(
        f"weights=auto: no ImageNet weights for {spec.name} (not cached at "
        f"{imagenet_cache_path(spec)}, {WEIGHTS_HOST[0]} unreachable) and "
        f"dataset={config.dataset} has no embedded source task; pass "
        "--weights=PATH, --source_dataset, or --weights=none"
    )
