"""Transferability estimators against closed forms and ordered cases."""

import numpy as np
import pytest

from keras_transfer.evaluation import transferability

RNG = np.random.default_rng(0)


def separated(separation, count=60, classes=3, dims=8, seed=0):
    """Gaussian features whose class means lie `separation` apart."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    means = np.eye(classes, dims) * separation
    return means[labels] + rng.normal(size=(count, dims)), labels


@pytest.mark.parametrize("name", sorted(transferability.ESTIMATORS))
def test_score_rises_as_features_separate_the_classes(name):
    estimate = transferability.ESTIMATORS[name]
    scores = [estimate(*separated(separation)) for separation in (0.0, 1.0, 3.0, 8.0)]
    assert scores == sorted(scores), scores
    assert scores[-1] > scores[0]


def test_logme_is_the_maximum_of_the_closed_form_evidence():
    features, labels = separated(2.0, count=40, dims=5)
    score, parameters = transferability.log_me(features, labels, return_parameters=True)
    per_class = []
    for label, (alpha, beta) in zip(range(3), parameters):
        target = (labels == label).astype(float)
        best = transferability.evidence(target, features, alpha, beta)
        per_class.append(best / len(features))
        # A (local) maximum over the prior and noise precisions.
        for scale_alpha, scale_beta in ((1.3, 1), (0.7, 1), (1, 1.3), (1, 0.7)):
            assert transferability.evidence(
                target, features, alpha * scale_alpha, beta * scale_beta) < best + 1e-6
    assert score == pytest.approx(np.mean(per_class), rel=1e-6)


def test_closed_form_evidence_matches_a_gaussian_marginal():
    # y ~ N(0, I/beta + F F^T / alpha): the evidence is that density at y.
    features = RNG.normal(size=(7, 3))
    target = RNG.normal(size=7)
    alpha, beta = 0.5, 2.0
    covariance = np.eye(7) / beta + features @ features.T / alpha
    _, logdet = np.linalg.slogdet(covariance)
    expected = -0.5 * (target @ np.linalg.solve(covariance, target) + logdet
                       + 7 * np.log(2 * np.pi))
    assert transferability.evidence(target, features, alpha, beta) == pytest.approx(expected)


def test_h_score_of_features_that_are_the_class_means_is_classes_minus_one():
    labels = np.arange(30) % 3
    features = np.eye(3)[labels]  # E[f | y] = f: all variance is explained.
    assert transferability.h_score(features, labels, shrink=False) == pytest.approx(2.0)
    noise = RNG.normal(size=(3000, 4))  # Independent of the labels.
    assert transferability.h_score(noise, np.arange(3000) % 3, shrink=False) < 0.01


def test_h_score_grows_with_noise_columns_where_logme_and_nleep_fall():
    # Why `rank` warns when candidates differ in width: with few examples,
    # columns of pure noise still "explain" some between-class variance.
    features, labels = separated(2.0, count=25, classes=5, dims=5)
    noise = np.random.default_rng(1).normal(size=(25, 256))
    wide = np.hstack([features, noise])
    assert transferability.h_score(wide, labels) > 2 * transferability.h_score(features, labels)
    assert transferability.log_me(wide, labels) < transferability.log_me(features, labels)
    assert transferability.nleep(wide, labels) < transferability.nleep(features, labels)


def test_nleep_is_a_mean_log_likelihood():
    perfect = transferability.nleep(*separated(30.0))
    assert -0.05 < perfect <= 0.0
    chance = transferability.nleep(*separated(0.0, count=300))
    assert chance > np.log(1 / 3) - 0.3 and chance < perfect


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="one label per row"):
        transferability.log_me(np.zeros((4, 2)), [0, 1, 0])
    with pytest.raises(ValueError, match="at least two classes"):
        transferability.h_score(np.zeros((4, 2)), [1, 1, 1, 1])
