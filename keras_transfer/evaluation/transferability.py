"""Transferability estimators: how well frozen features suit a labelled task,
scored without training anything on them.

Each takes `features` (N x D, e.g. pooled base outputs on the training
split) and integer `labels` (N) and returns one number, higher is better:

- LogME (You et al., ICML 2021): the log marginal evidence of a Bayesian
  linear model from the features to each one-hot label column, with its
  prior and noise precisions set by evidence maximisation; per example,
  averaged over classes.
- H-score (Bao et al., ICIP 2019), regularised (Ibrahim et al., ICLR 2022):
  tr(cov(f)^-1 cov(E[f | y])), the share of feature variance the classes
  explain; the covariance is shrunk (Ledoit-Wolf) because few-shot tasks have
  fewer examples than feature dimensions.
- NLEEP (Li et al., CVPR 2021): the log-likelihood of the labels under a
  Gaussian mixture fit on the (PCA-reduced) features, its components mapped to
  classes by co-occurrence.
"""

import numpy as np

# LogME's fixed-point iteration usually converges in 2-3 steps; 11 is its
# authors' bound, and a relative change of 1 % in alpha/beta its stop rule.
_LOGME_ITERATIONS = 11
_LOGME_TOLERANCE = 0.01
_EPSILON = 1e-5


def _check(features, labels):
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(
            "features must be N x D with one label per row. Received: "
            f"features.shape={features.shape}, labels.shape={labels.shape}")
    if len(np.unique(labels)) < 2:
        raise ValueError(f"labels must hold at least two classes. Received: {np.unique(labels)}")
    return features, labels


def _class_evidence(target, features, eigenvalues, eigenvectors):
    """Maximum evidence of one label column; returns (evidence / N, alpha, beta)."""
    count, dims = features.shape
    projected = eigenvectors.T @ (features.T @ target)
    alpha, beta = 1.0, 1.0
    for _ in range(_LOGME_ITERATIONS):
        ratio = alpha / beta
        gamma = np.sum(eigenvalues / (eigenvalues + ratio))
        mean = eigenvectors @ (projected * beta / (alpha + beta * eigenvalues))
        alpha_de = np.sum(mean * mean) + _EPSILON
        beta_de = np.sum((target - features @ mean) ** 2) + _EPSILON
        alpha, beta = gamma / alpha_de, (count - gamma) / beta_de
        if abs(alpha / beta - ratio) / ratio < _LOGME_TOLERANCE:
            break
    mean = eigenvectors @ (projected * beta / (alpha + beta * eigenvalues))
    return evidence(target, features, alpha, beta, eigenvalues, mean) / count, alpha, beta


def evidence(target, features, alpha, beta, eigenvalues=None, mean=None):
    """log p(target | features, alpha, beta) of Bayesian linear regression
    with prior N(0, 1/alpha) on the weights and noise precision beta."""
    count, dims = features.shape
    if eigenvalues is None:
        eigenvalues = np.linalg.eigvalsh(features.T @ features)
    if mean is None:
        precision = alpha * np.eye(dims) + beta * features.T @ features
        mean = beta * np.linalg.solve(precision, features.T @ target)
    residual = np.sum((target - features @ mean) ** 2)
    return (dims / 2 * np.log(alpha) + count / 2 * np.log(beta)
            - 0.5 * np.sum(np.log(alpha + beta * np.clip(eigenvalues, 0, None)))
            - beta / 2 * residual - alpha / 2 * np.sum(mean * mean)
            - count / 2 * np.log(2 * np.pi))


def log_me(features, labels, return_parameters=False):
    """LogME: mean over classes of the per-example maximum log evidence."""
    features, labels = _check(features, labels)
    eigenvalues, eigenvectors = np.linalg.eigh(features.T @ features)
    eigenvalues = np.clip(eigenvalues, 0, None)
    results = [_class_evidence((labels == label).astype(np.float64), features,
                               eigenvalues, eigenvectors)
               for label in np.unique(labels)]
    score = float(np.mean([result[0] for result in results]))
    return (score, [result[1:] for result in results]) if return_parameters else score


def h_score(features, labels, shrink=True):
    """(Regularised) H-score: tr(cov(f)^-1 cov(E[f | y]))."""
    from sklearn.covariance import LedoitWolf

    features, labels = _check(features, labels)
    centred = features - features.mean(axis=0)
    if shrink:
        covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    else:
        covariance = np.cov(centred, rowvar=False)
    class_means = np.zeros_like(centred)
    for label in np.unique(labels):
        class_means[labels == label] = centred[labels == label].mean(axis=0)
    between = np.cov(class_means, rowvar=False)
    return float(np.trace(np.linalg.pinv(covariance, rcond=1e-10, hermitian=True) @ between))


def nleep(features, labels, components_per_class=5, variance_kept=0.8, seed=0):
    """NLEEP: mean log P(y | x) through a Gaussian mixture's components."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    features, labels = _check(features, labels)
    classes = np.unique(labels)
    reduced = PCA(n_components=variance_kept, svd_solver="full",
                  random_state=seed).fit_transform(features) if features.shape[1] > 1 else features
    components = max(2, min(components_per_class * len(classes), len(features) // 2))
    mixture = GaussianMixture(components, covariance_type="diag", reg_covar=1e-4,
                              random_state=seed).fit(reduced)
    responsibilities = mixture.predict_proba(reduced)  # N x Z: P(z | x).
    one_hot = (labels[:, None] == classes[None, :]).astype(np.float64)
    joint = one_hot.T @ responsibilities / len(features)  # C x Z: P(y, z).
    label_given_component = joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-12)
    predicted = responsibilities @ label_given_component.T  # N x C: P(y | x).
    return float(np.mean(np.log(np.maximum(np.sum(predicted * one_hot, axis=1), 1e-12))))


ESTIMATORS = {"logme": log_me, "hscore": h_score, "nleep": nleep}
