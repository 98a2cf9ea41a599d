"""Rank backbones (and where to cut them) for a task before training any.

    python -m keras_transfer.rank --dataset=digits --models=vgg16,resnet50 \\
        --base_layers=top,block4,conv4

Every candidate (backbone x cut layer, with the weights `--weights` resolves
to for that backbone) runs once over the training split with its base
frozen; the pooled features are scored by transferability estimators (LogME,
H-score, NLEEP: `transferability.py`) and the table is printed best first.
That costs one forward pass per image and candidate, a small fraction of
fine-tuning each of them. Dataset flags are the main command's.
"""

import dataclasses
import time

from keras_transfer import config as config_lib
from keras_transfer.data import pipeline, tasks
from keras_transfer.evaluation import metrics as evaluate, transferability
from keras_transfer.log import logger
from keras_transfer.models import backbones, classifier as model_lib, weights
from keras_transfer.run import prepare
from keras_transfer.training import distribute, feature_cache, source


def feature_extractor(spec, base_weights, image_size, channels, base_layer):
    """pixels -> the classifier's own preprocessing -> base cut -> pooled, or
    None when this backbone has no `base_layer`."""
    try:
        classifier = model_lib.build_classifier(
            spec, 2, image_size=image_size, channels=channels, base_weights=base_weights,
            base_layer=base_layer)
    except config_lib.ConfigError:
        return None
    return feature_cache.trunk_of(classifier)


def pooled_features(extractor, examples, data, image_size, batch_size):
    """The extractor's pooled features of `examples` (a split of `data`)."""
    dataset = pipeline.make_dataset(examples, num_classes=data.num_classes,
                                    batch_size=batch_size, image_size=image_size,
                                    channels=data.channels)
    # The traced forward pass the evaluation uses, not an eager call a batch.
    return evaluate.outputs_over(extractor, dataset)[0]


def rank_candidates(config, models, base_layers, estimators):
    """Scores every candidate; returns rows sorted best first by estimators[0]."""

    data = tasks.with_unlabeled(config, tasks.load_for(
        config, "target", config.classes, config.dataset, config.examples_per_class))
    strategy = distribute.make_strategy("one_device")
    rows = []
    for name in models:
        candidate = dataclasses.replace(config, model=name)
        image_size = prepare.resolve_image_size(candidate, data)
        resolved = weights.resolve(candidate, image_size)
        # A source-task or autoencoder base not cached yet is pretrained once (and cached
        # for the run that follows the ranking).
        source.pretrain_base_if_needed(candidate, resolved, strategy=strategy,
                                       image_size=image_size, data=data,
                                       global_batch=candidate.batch_size)
        for requested in base_layers:
            # `auto`: the cut a run with these weights would make.
            base_layer = backbones.resolve_base_layer(candidate.backbone, requested,
                                                      resolved.kind, candidate.phase)
            if any(row["model"] == name and row["base_layer"] == base_layer for row in rows):
                continue  # `auto` and the cut it stands for: scored once.
            start = time.time()
            extractor = feature_extractor(candidate.backbone, resolved.load, image_size,
                                          data.channels, base_layer)
            if extractor is None:
                logger.info(f"{name} has no layer or block {base_layer!r}; skipped")
                continue
            features = pooled_features(extractor, data.train, data, image_size,
                                       config.batch_size)
            row = {"model": name, "base_layer": base_layer, "weights": resolved.kind,
                   "features": int(features.shape[1]), "examples": int(len(features))}
            for estimator in estimators:
                row[estimator] = transferability.ESTIMATORS[estimator](
                    features, data.train.labels)
            row["seconds"] = round(time.time() - start, 2)
            logger.info(f"scored {name} at {base_layer}: " + ", ".join(
                f"{estimator} {row[estimator]:.4f}" for estimator in estimators))
            rows.append(row)
    return sorted(rows, key=lambda row: -row[estimators[0]])


def table(rows, estimators):
    header = ["rank", "model", "base_layer", "weights", "features", *estimators, "seconds"]
    lines = [rows and "  ".join(f"{h:>12}" for h in header)]
    for index, row in enumerate(rows, 1):
        cells = [index, row["model"], row["base_layer"], row["weights"], row["features"],
                 *(f"{row[e]:.4f}" for e in estimators), row["seconds"]]
        lines.append("  ".join(f"{str(cell):>12}" for cell in cells))
    return "\n".join(lines)


def caveats(rows, estimators):
    """What the table needs to be read right: H-score rises with the feature
    width even for columns of pure noise (tests/test_transferability.py), and
    it ranked wider ResNet50 features above VGG16 in benchmarks/RESULTS.md,
    the reverse of fine-tuning."""
    widths = sorted({row["features"] for row in rows})
    if "hscore" not in estimators or len(widths) < 2:
        return []
    return [f"hscore grows with the feature width, and these candidates differ "
            f"({', '.join(str(width) for width in widths)} features): compare hscore only "
            f"between candidates of one width, and rank across widths by logme or nleep."]
