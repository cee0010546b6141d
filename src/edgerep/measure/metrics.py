"""Classification metrics for polarity: accuracy, macro-F1, per-class P/R/F1, confusion matrix.

Definitions follow scikit-learn's ``precision_recall_fscore_support`` (zero_division=0): for
class c, precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2PR/(P+R); macro-F1 is the
unweighted mean of per-class F1 over all classes, present or not. numpy only, except
:func:`paired_bootstrap` (SciPy, imported when called; a workstation dependency).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """Counts int64 [n_classes, n_classes]; row = true class, column = predicted class.

    Raises:
        ValueError: lengths differ or a label is outside ``[0, n_classes)``.
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels, y_pred {p.size}")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def classification_report(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, labels: Sequence[str]) -> dict:
    """All polarity metrics as a JSON-ready dict.

    Args:
        y_true: gold class indices into ``labels``.
        y_pred: predicted class indices into ``labels``, same length.
        labels: class names in index order.

    Returns:
        ``{"n", "accuracy", "macro_f1", "per_class": {label: {precision, recall, f1, support}},
        "confusion_matrix": [[...]], "labels": [...]}``; ratios in [0, 1].
    """
    cm = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    n = int(cm.sum())
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()) if len(labels) else 0.0,
        "per_class": {
            lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, lab in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
    }


#: The filtering task's classes, in the index order of :func:`relatedness_report`'s ``filtering``.
FILTERING_LABELS: tuple[str, ...] = ("RELATED", "UNRELATED")


def related_decision(logits: np.ndarray) -> np.ndarray:
    """bool [n]: related when P(UNRELATED) < 0.5 under softmax of ``logits`` float [n, 4] over
    :data:`edgerep.RELATEDNESS_LABELS` (:func:`edgerep.device.runtime.relatedness_split`)."""
    from edgerep.device.runtime import relatedness_split, softmax

    return relatedness_split(softmax(logits))[1] >= 0.5


def logits_report(y_true: Sequence[int] | np.ndarray, logits: np.ndarray, labels: Sequence[str]) -> dict:
    """The metrics of a model's ``logits`` float [n, len(labels)] against gold indices ``y_true``.

    A polarity model (3 labels): :func:`classification_report` of the arg-max. A model that also
    decides relatedness (``labels`` = :data:`edgerep.RELATEDNESS_LABELS`): the polarity metrics
    on the gold-related tweets only, the class read from the polarity logits (the first three), so
    they compare with a polarity model's on the same tweets; plus ``filtering``: the
    :func:`classification_report` of related vs UNRELATED (:func:`related_decision`) on every tweet,
    indices into :data:`FILTERING_LABELS`.

    Raises:
        ValueError: lengths differ or a label is out of range.
    """
    y = np.asarray(y_true, dtype=np.int64)
    logits = np.asarray(logits)
    if len(labels) != 4 or labels[-1] != "UNRELATED":
        return classification_report(y, logits.argmax(-1), labels)
    related = y < 3
    report = classification_report(y[related], logits[related, :3].argmax(-1), labels[:3])
    report["filtering"] = classification_report((~related).astype(np.int64), (~related_decision(logits)).astype(np.int64), FILTERING_LABELS)
    return report


def validation_summary(metrics: dict) -> dict:
    """An epoch's validation entry from :func:`logits_report`:
    ``accuracy``, ``macro_f1``, ``n`` (polarity) and, for a model that decides relatedness,
    ``filtering`` (``n``, ``accuracy``, ``unrelated_f1``)."""
    entry = {k: metrics[k] for k in ("accuracy", "macro_f1", "n")}
    if "filtering" in metrics:
        f = metrics["filtering"]
        entry["filtering"] = {"n": f["n"], "accuracy": f["accuracy"], "unrelated_f1": f["per_class"]["UNRELATED"]["f1"]}
    return entry


def validation_text(metrics: dict) -> str:
    """The validation figures of :func:`logits_report` for a log line."""
    text = f"validation accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}"
    if "filtering" in metrics:
        f = metrics["filtering"]
        text += f"; filtering accuracy {f['accuracy']:.4f}, UNRELATED F1 {f['per_class']['UNRELATED']['f1']:.4f}"
    return text


def _accuracy_and_macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 along the last axis of int arrays ``[..., n]`` (the definitions above)."""
    correct = y_true == y_pred
    f1 = []
    for c in range(n_classes):
        tp = np.sum(correct & (y_true == c), axis=-1)
        support = np.sum(y_true == c, axis=-1)
        predicted = np.sum(y_pred == c, axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            f1.append(np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0))  # = 2PR/(P+R)
    return correct.mean(axis=-1), np.mean(f1, axis=0)


def paired_bootstrap(
    y_true: Sequence[int] | np.ndarray,
    pred_reference: Sequence[int] | np.ndarray,
    pred_other: Sequence[int] | np.ndarray,
    n_classes: int,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """How far apart two classifiers' accuracy and macro-F1 are on the same tweets, with a
    paired bootstrap confidence interval (tweets resampled with replacement, both models'
    predictions kept together; Efron & Tibshirani, 1993; Koehn, 2004, for system comparison).

    Args:
        y_true: gold class indices, int [n].
        pred_reference: the reference model's predicted classes, int [n], in the same tweet order.
        pred_other: the other model's predicted classes, int [n], in the same tweet order.
        n_classes: number of classes (3 for polarity).
        resamples: bootstrap resamples (one call resamples both metrics).
        confidence: two-sided level of the percentile interval.
        seed: resampling seed (the same inputs give the same interval).

    Returns:
        ``{"n", "resamples", "confidence", "accuracy": {"diff", "low", "high"}, "macro_f1": {...}}``:
        ``diff`` = other - reference on all ``n`` tweets, ``low``/``high`` the interval of that
        difference; fractions (0.01 = 1 point). An interval that contains 0 means the data do not
        tell the two apart. ``scipy.stats.bootstrap`` (``paired=True``, percentile method) draws
        the resamples.

    Raises:
        ValueError: lengths differ, fewer than 2 tweets, or a label outside ``[0, n_classes)``.
    """
    from scipy.stats import bootstrap

    y = np.asarray(y_true, dtype=np.int64)
    a = np.asarray(pred_reference, dtype=np.int64)
    b = np.asarray(pred_other, dtype=np.int64)
    if not y.shape == a.shape == b.shape or y.ndim != 1:
        raise ValueError(f"y_true, pred_reference and pred_other must have one length, got {y.size}, {a.size}, {b.size}")
    if y.size < 2:
        raise ValueError("a paired bootstrap needs at least 2 tweets")
    if min(y.min(), a.min(), b.min()) < 0 or max(y.max(), a.max(), b.max()) >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes})")
    out: dict[str, Any] = {"n": int(y.size), "resamples": int(resamples), "confidence": float(confidence)}
    names = ("accuracy", "macro_f1")

    def diff(yy, aa, bb, axis=-1):  # [2, ...]: accuracy and macro-F1 of b minus a's
        return np.stack(_accuracy_and_macro_f1(yy, bb, n_classes)) - np.stack(_accuracy_and_macro_f1(yy, aa, n_classes))

    point = diff(y, a, b)
    if np.array_equal(a, b):  # every resample gives 0 (scipy warns on a degenerate distribution)
        return {**out, **{k: {"diff": 0.0, "low": 0.0, "high": 0.0} for k in names}}
    ci = bootstrap(
        (y, a, b),
        diff,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        batch=250,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    for i, k in enumerate(names):
        out[k] = {"diff": float(point[i]), "low": float(ci.low[i]), "high": float(ci.high[i])}
    return out
