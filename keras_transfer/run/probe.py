"""What an autoencoder base learned, measured before any fine-tuning: a
linear probe of its frozen features on the target's labelled training split,
beside the same probe of a random base, of the supervised source base where
the cache holds one, and of PCA on the same pixels.

Two numbers per base: LogME (the ranking's estimator, on the training
split) and the validation accuracy of a logistic regression fitted on the
training split's features. A reconstruction loss that falls says the
decoder learned to draw; only these say whether the encoder's features
separate the target's classes.
"""

import dataclasses
import os
from typing import Optional

import numpy as np
from sklearn import decomposition, linear_model, pipeline as sk_pipeline, preprocessing

from keras_transfer.evaluation import transferability
from keras_transfer.log import logger
from keras_transfer.models import weights
from keras_transfer.run import rank

# PCA keeps at most this many components (and fewer than training images).
PCA_COMPONENTS = 64


@dataclasses.dataclass(frozen=True)
class ProbeScore:
    """One base's probe: `features` per image, LogME on the training split,
    and the logistic regression's accuracy on the validation split."""

    base: str
    features: int
    logme: float
    logistic_accuracy: float

    def to_dict(self):
        return dataclasses.asdict(self)


def _score(name, train, validation, data, standardize=True):
    classifier = sk_pipeline.make_pipeline(
        *([preprocessing.StandardScaler()] if standardize else []),
        linear_model.LogisticRegression(max_iter=2000))
    classifier.fit(train, data.train.labels)
    return ProbeScore(base=name, features=int(train.shape[1]),
                      logme=round(float(transferability.log_me(train, data.train.labels)), 4),
                      logistic_accuracy=round(float(classifier.score(
                          validation, data.validation.labels)), 4))


def _pixels(examples):
    """0-1 pixels, one row an image: the scale the reconstruction loss sees."""
    return examples.images.reshape(len(examples), -1).astype(np.float32) / 255.0


def pca_probe(data):
    """The probe of PCA on the 0-1 pixels (in-memory images only)."""
    if data.train.images is None or len(data.train) < 3:
        return None
    components = min(PCA_COMPONENTS, len(data.train) - 1, _pixels(data.train).shape[1])
    pca = decomposition.PCA(n_components=components, random_state=0).fit(_pixels(data.train))
    # Not standardised: PCA's coordinates keep the pixels' geometry, and
    # scaling each to unit variance would make the last, noise-only
    # components as loud as the first. With as many components as training
    # images less one, it whitens the training images into a regular
    # simplex, every two equally far apart, and the probe learns nothing:
    # 0.54 at 10 labels a class on digits 5-9, against 0.94 on this scale,
    # which is that of a logistic regression on the pixels themselves.
    return _score("PCA of the pixels",
                  pca.transform(_pixels(data.train)), pca.transform(_pixels(data.validation)),
                  data, standardize=False)


def _supervised_source(config, image_size):
    """The cached source base this run's settings would transfer with
    `--weights=source`, when one is there (it is not trained for the probe)."""
    if config.phase == "pretrain" or weights.source_task(config) is None:
        return None  # Pretraining has no source task; nor has a folder without one.
    # The source base's key has none of the target's settings: shed those
    # that `--weights=source` would refuse.
    source = dataclasses.replace(config, weights="source", unlabeled_data=None,
                                 semi_supervised="none")
    path = weights.source_cache_file(source, image_size)
    return path if os.path.isfile(path) else None


def probe_bases(config, data, image_size, resolved) -> Optional[list]:
    """The `ProbeScore`s of the autoencoder base `resolved` and what it is
    compared with, logged; None for other weights."""
    if resolved.kind != "autoencoder":
        return None
    candidates = [("autoencoder", resolved.load), ("random", None)]
    source = _supervised_source(config, image_size)
    if source:
        candidates.append(("supervised source", source))
    scores = []
    for name, load in candidates:
        extractor = rank.feature_extractor(config.backbone, load, image_size, data.channels,
                                           config.base_layer)
        train, validation = [rank.pooled_features(extractor, split, data, image_size,
                                                  config.batch_size)
                             for split in (data.train, data.validation)]
        scores.append(_score(f"{name} base", train, validation, data))
    pca = pca_probe(data)
    scores += [pca] if pca else []
    for score in scores:
        logger.info(f"linear probe of the {score.base} ({score.features} features): "
                    f"LogME {score.logme:.3f}, logistic regression validation accuracy "
                    f"{score.logistic_accuracy:.3f}")
    return [score.to_dict() for score in scores]
