"""Quantification: the share of each polarity class in a set of tweets, estimated from a
classifier's outputs rather than counted from its labels.

Counting predicted labels (classify and count, CC) is biased wherever the classifier errs: a
model that calls some negatives NEUTRAL under-reports every rise of negative tweets. The
estimators here are the standard ones of the quantification literature (survey: Esuli, Fabris,
Moreo & Sebastiani, "Learning to Quantify", Springer 2023; QuaPy implements them):

* CC: the share of predicted labels, with a Wilson score interval (Wilson, JASA 1927).
* PCC, probabilistic classify and count: the mean posterior probability (Bella, Ferri,
  Hernández-Orallo & Ramírez-Quintana, ICDM 2010).
* ACC, adjusted classify and count: each class's CC share corrected with the classifier's true
  and false positive rates one class against the rest, ``p = (q - fpr) / (tpr - fpr)`` (Forman,
  Data Mining and Knowledge Discovery 2008), clipped to [0, 1] and renormalised.
* EM, expectation-maximisation of the priors: the posteriors re-weighted by the ratio of new to
  training priors until the priors stop moving (Saerens, Latinne & Decaestecker, Neural
  Computation 2002).

All functions are NumPy only and take class axes in the order of :data:`edgerep.LABELS`.
"""

from __future__ import annotations

import numpy as np

#: Two-sided 95% normal quantile.
Z95 = 1.959963984540054


def wilson_interval(k: np.ndarray | int, n: np.ndarray | int, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion ``k / n`` (Wilson, JASA 1927).

    Args:
        k: successes (any shape); n: trials (same shape or broadcastable), >= 1.
        z: normal quantile (1.96: 95%).

    Returns:
        ``(low, high)`` float64 arrays in [0, 1].
    """
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def one_vs_rest_rates(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the classifier's true and false positive rates, one class against the rest.

    Args:
        confusion: int [k, k], rows = gold class, columns = predicted class (the layout of
            :func:`edgerep.measure.metrics.confusion_matrix`).

    Returns:
        ``(tpr, fpr)``: float64 [k] each; ``tpr[c] = P(pred c | gold c)``,
        ``fpr[c] = P(pred c | gold not c)``.

    Raises:
        ValueError: not a square matrix, or a class with no gold examples or no others.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    gold = cm.sum(axis=1)
    if (gold == 0).any() or (gold.sum() - gold == 0).any():
        raise ValueError("every class needs gold examples, and others beside it, to estimate its rates")
    tpr = np.diag(cm) / gold
    fpr = (cm.sum(axis=0) - np.diag(cm)) / (gold.sum() - gold)
    return tpr, fpr


def adjusted_count(q: np.ndarray, tpr: np.ndarray, fpr: np.ndarray) -> np.ndarray:
    """ACC: classify-and-count shares corrected by the classifier's error rates (Forman 2008).

    Args:
        q: float [..., k] CC shares (or interval endpoints; the correction is increasing in q).
        tpr, fpr: float [k] (:func:`one_vs_rest_rates`).

    Returns:
        float64 [..., k]: ``(q - fpr) / (tpr - fpr)`` clipped to [0, 1]; where ``tpr <= fpr``
        (a class the classifier cannot tell apart) the CC share is kept.
    """
    q = np.asarray(q, dtype=np.float64)
    gap = tpr - fpr
    ok = gap > 1e-6
    out = np.where(ok, (q - fpr) / np.where(ok, gap, 1.0), q)
    return np.clip(out, 0.0, 1.0)


def renormalise(p: np.ndarray) -> np.ndarray:
    """Shares [..., k] scaled to sum to 1 along the last axis (all-zero rows become uniform)."""
    p = np.asarray(p, dtype=np.float64)
    s = p.sum(axis=-1, keepdims=True)
    k = p.shape[-1]
    return np.where(s > 0, p / np.where(s > 0, s, 1.0), 1.0 / k)


def em_priors(posteriors: np.ndarray, train_priors: np.ndarray, max_iter: int = 100, tol: float = 1e-6) -> tuple[np.ndarray, int]:
    """EM re-estimation of the class priors of a set of tweets (Saerens, Latinne & Decaestecker,
    Neural Computation 14(1), 2002, section 2.2).

    Args:
        posteriors: float [n, k] P(class | tweet) of a classifier trained under ``train_priors``.
        train_priors: float [k] the class shares of its training data (sum 1, all > 0).
        max_iter: most EM iterations.
        tol: stop when no prior moves by more than this.

    Returns:
        ``(priors, iterations)``: float64 [k] (sum 1) and the iterations run.

    Raises:
        ValueError: shapes that do not match, or a training prior <= 0.
    """
    post = np.asarray(posteriors, dtype=np.float64)
    pt = np.asarray(train_priors, dtype=np.float64)
    if post.ndim != 2 or post.shape[1] != pt.shape[0]:
        raise ValueError(f"posteriors {post.shape} and training priors {pt.shape} do not match")
    if (pt <= 0).any():
        raise ValueError("training priors must all be > 0")
    if len(post) == 0:
        return pt / pt.sum(), 0
    prior = pt / pt.sum()  # the paper's start: the training priors
    ratio_base = post / pt
    for it in range(1, max_iter + 1):
        w = ratio_base * prior
        w /= w.sum(axis=1, keepdims=True)
        new = w.mean(axis=0)
        if np.abs(new - prior).max() < tol:
            return new, it
        prior = new
    return prior, max_iter
